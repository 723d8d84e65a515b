import { Field, ID, InputType, ObjectType, registerEnumType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { PageInfo } from '../graphql/relay-pagination.ts';
import { Role } from '../roles/role.types.ts';

export const UserStatusValues = { ACTIVE: 'active', SUSPENDED: 'suspended' } as const;
registerEnumType(UserStatusValues, { name: 'UserStatus' });

@ObjectType({ description: 'A person in the organization' })
@TypePermission('read', 'User')
export class User {
  @Field(() => ID)
  id!: string;

  @Field()
  email!: string;

  @Field()
  displayName!: string;

  @Field(() => String, { nullable: true, description: 'the identity provider\'s ID (SCIM externalId)' })
  externalId!: string | null;

  @Field(() => UserStatusValues)
  status!: 'active' | 'suspended';

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;
}

@ObjectType()
@TypePermission('read', 'User')
export class UserEdge {
  @Field()
  cursor!: string;

  @Field(() => User)
  node!: User;
}

@ObjectType()
@TypePermission('read', 'User')
export class UserConnection {
  @Field(() => [UserEdge])
  edges!: UserEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType()
export class UserFilter {
  @Field({ nullable: true, description: 'case-insensitive substring of email or display name' })
  search?: string;

  @Field(() => UserStatusValues, { nullable: true })
  status?: 'active' | 'suspended';
}

@ObjectType({ description: 'A user\'s role in the organization' })
@TypePermission('read', 'Membership')
export class Membership {
  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;

  /** resolved by MembershipResolver (its own permission) from the joined row */
  userRow!: User;
  roleRow!: Role;
}

@InputType()
export class CreateUserInput {
  @Field()
  email!: string;

  @Field()
  displayName!: string;

  @Field({ nullable: true })
  externalId?: string;

  @Field(() => ID, { description: 'the role to give the user' })
  roleId!: string;
}

@InputType()
export class UpdateUserInput {
  @Field(() => ID)
  id!: string;

  @Field({ nullable: true })
  displayName?: string;

  @Field(() => UserStatusValues, { nullable: true })
  status?: 'active' | 'suspended';
}
