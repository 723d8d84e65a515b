import { Field, ID, InputType, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';

@ObjectType({ description: 'The caller\'s organization (tenant)' })
@TypePermission('read', 'Organization')
export class Organization {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;
}

@InputType()
export class UpdateOrganizationInput {
  @Field()
  name!: string;
}
