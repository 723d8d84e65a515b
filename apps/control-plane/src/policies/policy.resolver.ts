import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { CreatePolicyInput, Policy, UpdatePolicyInput } from './policy.types.ts';
import { PolicyService } from './policy.service.ts';

@Resolver(() => Policy)
export class PolicyResolver {
  private readonly policies: PolicyService;

  constructor(policies: PolicyService) {
    this.policies = policies;
  }

  @Query(() => [Policy], { name: 'policies', description: 'Policies (SLA domains), lowest priority number first' })
  @RequirePermission('read', 'Policy')
  listPolicies(@Caller() caller: Principal): Promise<Policy[]> {
    return this.policies.list(caller);
  }

  @Query(() => Policy)
  @RequirePermission('read', 'Policy')
  policy(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<Policy> {
    return this.policies.get(caller, id);
  }

  @Mutation(() => Policy)
  @RequirePermission('create', 'Policy')
  createPolicy(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreatePolicyInput): Promise<Policy> {
    return this.policies.create(caller, input, requestId);
  }

  @Mutation(() => Policy)
  @RequirePermission('update', 'Policy')
  updatePolicy(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdatePolicyInput): Promise<Policy> {
    return this.policies.update(caller, input, requestId);
  }

  @Mutation(() => Boolean)
  @RequirePermission('delete', 'Policy')
  deletePolicy(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<boolean> {
    return this.policies.delete(caller, id, requestId);
  }
}
