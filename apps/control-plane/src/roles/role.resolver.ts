import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { CreateRoleInput, Role, UpdateRoleInput } from './role.types.ts';
import { RoleService } from './role.service.ts';

@Resolver(() => Role)
export class RoleResolver {
  private readonly roles: RoleService;

  constructor(roles: RoleService) {
    this.roles = roles;
  }

  @Query(() => [Role], { name: 'roles', description: 'Built-in and custom roles' })
  @RequirePermission('read', 'Role')
  listRoles(@Caller() caller: Principal): Promise<Role[]> {
    return this.roles.list(caller);
  }

  @Query(() => Role)
  @RequirePermission('read', 'Role')
  role(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<Role> {
    return this.roles.get(caller, id);
  }

  @Mutation(() => Role, { description: 'Creates a custom role; you can only grant what you hold' })
  @RequirePermission('create', 'Role')
  createRole(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateRoleInput): Promise<Role> {
    return this.roles.create(caller, input, requestId);
  }

  @Mutation(() => Role)
  @RequirePermission('update', 'Role')
  updateRole(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdateRoleInput): Promise<Role> {
    return this.roles.update(caller, input, requestId);
  }

  @Mutation(() => Boolean, { description: 'Deletes a custom role that has no members' })
  @RequirePermission('delete', 'Role')
  deleteRole(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<boolean> {
    return this.roles.delete(caller, id, requestId);
  }
}
