import { Field, InputType, ObjectType } from '@nestjs/graphql';
import { TypeRequiresAuthentication } from '../access/type-permissions.ts';

// Shared by stores, resources and policies; only reachable through their guarded fields.

@ObjectType({ description: 'A label: `key` = `value`' })
@TypeRequiresAuthentication()
export class LabelPair {
  @Field()
  key!: string;

  @Field()
  value!: string;
}

@ObjectType({ description: 'One term of a label selector: the label `key` must have one of `values`' })
@TypeRequiresAuthentication()
export class LabelSelectorTerm {
  @Field()
  key!: string;

  @Field(() => [String])
  values!: string[];
}

@InputType()
export class LabelPairInput {
  @Field({ description: 'lowercase letters, digits, ".", "_", "/" and "-", at most 63 characters' })
  key!: string;

  @Field({ description: 'letters, digits, ".", "_" and "-", at most 63 characters' })
  value!: string;
}

@InputType()
export class LabelSelectorTermInput {
  @Field()
  key!: string;

  @Field(() => [String])
  values!: string[];
}
