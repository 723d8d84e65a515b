import { Field, ID, InputType, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';

@ObjectType({ description: 'A label condition: the resource\'s label `key` must have one of `values`' })
@TypePermission('read', 'Role')
export class LabelCondition {
  @Field()
  key!: string;

  @Field(() => [String])
  values!: string[];
}

@ObjectType({ description: 'One rule of a role: `action` on `subject`, optionally only for resources with matching labels' })
@TypePermission('read', 'Role')
export class PermissionRuleType {
  @Field()
  action!: string;

  @Field()
  subject!: string;

  @Field(() => [LabelCondition])
  labels!: LabelCondition[];

  @Field({ description: 'only the caller\'s own objects' })
  own!: boolean;

  @Field({ description: 'a "cannot" rule that removes what other rules allow' })
  inverted!: boolean;
}

@ObjectType({ description: 'A built-in (owner, admin, operator, auditor, viewer) or custom role' })
@TypePermission('read', 'Role')
export class Role {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field()
  description!: string;

  @Field()
  builtin!: boolean;

  @Field(() => [PermissionRuleType])
  permissions!: PermissionRuleType[];

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;
}

@InputType()
export class LabelConditionInput {
  @Field()
  key!: string;

  @Field(() => [String])
  values!: string[];
}

@InputType()
export class PermissionRuleInput {
  @Field()
  action!: string;

  @Field()
  subject!: string;

  @Field(() => [LabelConditionInput], { nullable: true })
  labels?: LabelConditionInput[] | null;
}

@InputType()
export class CreateRoleInput {
  @Field({ description: 'lowercase letters, digits and "-", 2-63 characters' })
  name!: string;

  @Field({ nullable: true })
  description?: string;

  @Field(() => [PermissionRuleInput])
  permissions!: PermissionRuleInput[];
}

@InputType()
export class UpdateRoleInput {
  @Field(() => ID)
  id!: string;

  @Field({ nullable: true })
  description?: string;

  @Field(() => [PermissionRuleInput], { nullable: true })
  permissions?: PermissionRuleInput[];
}
