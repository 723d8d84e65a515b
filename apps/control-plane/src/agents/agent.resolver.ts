import { Args, ID, Int, Mutation, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { EnrollmentTokenService } from '../enrollment/enrollment-token.service.ts';
import {
  Agent, AgentConnection, AgentFilter, CreatedEnrollmentToken, CreateEnrollmentTokenInput, EnrollmentToken, EnrollmentTokenConnection, EnrollmentTokenFilter, RekeyAgentInput,
  UpdateAgentLabelsInput,
} from './agent.types.ts';
import { AgentService } from './agent.service.ts';

@Resolver(() => Agent)
export class AgentResolver {
  private readonly service: AgentService;
  private readonly tokens: EnrollmentTokenService;

  constructor(agents: AgentService, tokens: EnrollmentTokenService) {
    this.service = agents;
    this.tokens = tokens;
  }

  @Query(() => AgentConnection, { description: 'Enrolled agents you may see, oldest first' })
  @RequirePermission('read', 'Agent')
  agents(
    @Caller() caller: Principal,
    @Args('first', { type: () => Int, nullable: true }) first?: number,
    @Args('after', { nullable: true }) after?: string,
    @Args('filter', { type: () => AgentFilter, nullable: true }) filter?: AgentFilter,
  ): Promise<AgentConnection> {
    return this.service.list(caller, { ...(first != null ? { first } : {}), ...(after != null ? { after } : {}), ...(filter != null ? { filter } : {}) });
  }

  @Query(() => Agent)
  @RequirePermission('read', 'Agent')
  agent(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<Agent> {
    return this.service.get(caller, id);
  }

  @Mutation(() => Agent, { description: 'Refuses the agent\'s calls until it is enabled again (its running jobs\' leases run out)' })
  @RequirePermission('update', 'Agent')
  disableAgent(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<Agent> {
    return this.service.setStatus(caller, id, 'disabled', requestId);
  }

  @Mutation(() => Agent)
  @RequirePermission('update', 'Agent')
  enableAgent(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<Agent> {
    return this.service.setStatus(caller, id, 'active', requestId);
  }

  @Mutation(() => Agent, { description: 'Removes the agent for good: its calls get AGENT_REMOVED, its queued jobs are cancelled' })
  @RequirePermission('update', 'Agent')
  removeAgent(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<Agent> {
    return this.service.remove(caller, id, requestId);
  }

  @Mutation(() => Agent, { description: 'Replaces the agent\'s labels' })
  @RequirePermission('update', 'Agent')
  updateAgentLabels(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: UpdateAgentLabelsInput): Promise<Agent> {
    return this.service.updateLabels(caller, input, requestId);
  }

  @Mutation(() => Agent, { description: 'Registers a new public key for the agent; the old key is refused from then on' })
  @RequirePermission('update', 'Agent')
  rekeyAgent(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: RekeyAgentInput): Promise<Agent> {
    return this.service.rekey(caller, input, requestId);
  }

  @Query(() => EnrollmentTokenConnection, { description: 'Enrollment tokens, newest first (never their secrets)' })
  @RequirePermission('read', 'Agent')
  enrollmentTokens(
    @Caller() caller: Principal,
    @Args('first', { type: () => Int, nullable: true }) first?: number,
    @Args('after', { nullable: true }) after?: string,
    @Args('filter', { type: () => EnrollmentTokenFilter, nullable: true }) filter?: EnrollmentTokenFilter,
  ): Promise<EnrollmentTokenConnection> {
    return this.tokens.list(caller, { ...(first != null ? { first } : {}), ...(after != null ? { after } : {}), ...(filter != null ? { filter } : {}) });
  }

  @Mutation(() => CreatedEnrollmentToken, { description: 'A token for `arca agent enroll`; the secret is in this answer only' })
  @RequirePermission('create', 'Agent')
  createEnrollmentToken(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateEnrollmentTokenInput): Promise<CreatedEnrollmentToken> {
    return this.tokens.create(caller, input, requestId);
  }

  @Mutation(() => EnrollmentToken)
  @RequirePermission('create', 'Agent')
  revokeEnrollmentToken(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<EnrollmentToken> {
    return this.tokens.revoke(caller, id, requestId);
  }
}
