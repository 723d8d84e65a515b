import { Args, Field, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { RequireAuthenticated, RequirePermission } from '../access/require-permission.decorator.ts';
import { TypeRequiresAuthentication } from '../access/type-permissions.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { Organization, UpdateOrganizationInput } from './organization.types.ts';
import { OrganizationService } from './organization.service.ts';

@ObjectType({ description: 'Who is calling: their user, organization, role and effective permissions' })
@TypeRequiresAuthentication()
export class Viewer {
  @Field()
  userId!: string;

  @Field()
  organizationId!: string;

  @Field()
  roleName!: string;

  @Field(() => String, { nullable: true, description: 'the API token used, if any' })
  tokenId!: string | null;

  @Field(() => String, { nullable: true, description: 'the dashboard session used, if any' })
  sessionId!: string | null;

  @Field(() => [String], { description: 'effective "action:Subject" permissions (conditions not shown)' })
  permissions!: string[];
}

@Resolver()
export class OrganizationResolver {
  private readonly organizations: OrganizationService;

  constructor(organizations: OrganizationService) {
    this.organizations = organizations;
  }

  @Query(() => Viewer, { description: 'The caller' })
  @RequireAuthenticated()
  viewer(@Caller() caller: Principal): Viewer {
    const permissions = new Set<string>();
    for (const rule of caller.ability.rules) {
      if (rule.inverted === true) continue;
      for (const action of [rule.action].flat()) for (const subject of [rule.subject ?? 'all'].flat()) permissions.add(`${action}:${String(subject)}`);
    }
    return { userId: caller.userId, organizationId: caller.orgId, roleName: caller.roleName, tokenId: caller.tokenId, sessionId: caller.sessionId, permissions: [...permissions].sort() };
  }

  @Query(() => Organization, { description: 'The caller\'s organization' })
  @RequirePermission('read', 'Organization')
  organization(@Caller() caller: Principal): Promise<Organization> {
    return this.organizations.get(caller);
  }

  @Mutation(() => Organization)
  @RequirePermission('update', 'Organization')
  updateOrganization(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdateOrganizationInput): Promise<Organization> {
    return this.organizations.update(caller, input, requestId);
  }
}
