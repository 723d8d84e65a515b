import { Args, ID, Int, Mutation, Parent, Query, ResolveField, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { Role } from '../roles/role.types.ts';
import { CreateUserInput, Membership, UpdateUserInput, User, UserConnection, UserFilter } from './user.types.ts';
import { UserService } from './user.service.ts';

@Resolver(() => User)
export class UserResolver {
  private readonly users: UserService;

  constructor(users: UserService) {
    this.users = users;
  }

  @Query(() => UserConnection, { name: 'users', description: 'Users of the organization, by email' })
  @RequirePermission('read', 'User')
  listUsers(
    @Caller() caller: Principal,
    @Args('first', { type: () => Int, nullable: true }) first?: number,
    @Args('after', { nullable: true }) after?: string,
    @Args('filter', { type: () => UserFilter, nullable: true }) filter?: UserFilter,
  ): Promise<UserConnection> {
    return this.users.list(caller, first, after, filter);
  }

  @Query(() => User)
  @RequirePermission('read', 'User')
  user(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<User> {
    return this.users.get(caller, id);
  }

  @Mutation(() => User, { description: 'Adds a person with a role (until invitations and SCIM arrive)' })
  @RequirePermission('create', 'User')
  createUser(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateUserInput): Promise<User> {
    return this.users.create(caller, input, requestId);
  }

  @Mutation(() => User)
  @RequirePermission('update', 'User')
  updateUser(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdateUserInput): Promise<User> {
    return this.users.update(caller, input, requestId);
  }

  @Mutation(() => Boolean)
  @RequirePermission('delete', 'User')
  deleteUser(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<boolean> {
    return this.users.delete(caller, id, requestId);
  }
}

@Resolver(() => Membership)
export class MembershipResolver {
  private readonly users: UserService;

  constructor(users: UserService) {
    this.users = users;
  }

  @Query(() => [Membership], { description: 'Who has which role' })
  @RequirePermission('read', 'Membership')
  memberships(@Caller() caller: Principal): Promise<Membership[]> {
    return this.users.memberships(caller);
  }

  @Mutation(() => Membership, { description: 'Gives a user another role' })
  @RequirePermission('update', 'Membership')
  setUserRole(
    @Caller() caller: Principal,
    @RequestId() requestId: string,
    @Args('userId', { type: () => ID }) userId: string,
    @Args('roleId', { type: () => ID }) roleId: string,
  ): Promise<Membership> {
    return this.users.setRole(caller, userId, roleId, requestId);
  }

  @ResolveField(() => User)
  @RequirePermission('read', 'User')
  user(@Parent() membership: Membership): User {
    return membership.userRow;
  }

  @ResolveField(() => Role)
  @RequirePermission('read', 'Role')
  role(@Parent() membership: Membership): Role {
    return membership.roleRow;
  }
}
