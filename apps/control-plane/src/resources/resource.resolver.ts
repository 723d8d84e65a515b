import { Args, ID, Mutation, Parent, Query, ResolveField, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { Policy } from '../policies/policy.types.ts';
import { PolicyService } from '../policies/policy.service.ts';
import { CreateResourceInput, Resource, UpdateResourceInput } from './resource.types.ts';
import { ResourceService } from './resource.service.ts';

@Resolver(() => Resource)
export class ResourceResolver {
  private readonly resources: ResourceService;
  private readonly policies: PolicyService;

  constructor(resources: ResourceService, policies: PolicyService) {
    this.resources = resources;
    this.policies = policies;
  }

  @Query(() => [Resource], { name: 'resources', description: 'Resources you may see, optionally of one agent' })
  @RequirePermission('read', 'Resource')
  listResources(@Caller() caller: Principal, @Args('agentId', { type: () => ID, nullable: true }) agentId?: string): Promise<Resource[]> {
    return this.resources.list(caller, { agentId });
  }

  @Query(() => Resource)
  @RequirePermission('read', 'Resource')
  resource(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<Resource> {
    return this.resources.get(caller, id);
  }

  @ResolveField(() => Policy, { nullable: true, description: 'the matching policy with the lowest priority number (then the oldest); null when none matches' })
  @RequirePermission('read', 'Policy')
  effectivePolicy(@Caller() caller: Principal, @Parent() resource: Resource): Promise<Policy | null> {
    return this.policies.effectiveFor(caller, Object.fromEntries(resource.effectiveLabels.map((l) => [l.key, l.value])));
  }

  @Mutation(() => Resource)
  @RequirePermission('create', 'Resource')
  createResource(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateResourceInput): Promise<Resource> {
    return this.resources.create(caller, input, requestId);
  }

  @Mutation(() => Resource)
  @RequirePermission('update', 'Resource')
  updateResource(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdateResourceInput): Promise<Resource> {
    return this.resources.update(caller, input, requestId);
  }

  @Mutation(() => Boolean)
  @RequirePermission('delete', 'Resource')
  deleteResource(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<boolean> {
    return this.resources.delete(caller, id, requestId);
  }
}
