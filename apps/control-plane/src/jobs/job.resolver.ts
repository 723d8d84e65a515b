import { Args, ID, Int, Mutation, Parent, Query, ResolveField, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { JobCommandService } from './job-command.service.ts';
import { JobQueryService } from './job-query.service.ts';
import { Job, JobConnection, JobEvent, JobFilter, StartCheckInput, StartRestoreInput } from './job.types.ts';

@Resolver(() => Job)
export class JobResolver {
  private readonly query: JobQueryService;
  private readonly commands: JobCommandService;

  constructor(query: JobQueryService, commands: JobCommandService) {
    this.query = query;
    this.commands = commands;
  }

  @Query(() => JobConnection, { description: 'Jobs, newest first' })
  @RequirePermission('read', 'Job')
  jobs(
    @Caller() caller: Principal,
    @Args('first', { type: () => Int, nullable: true }) first?: number,
    @Args('after', { nullable: true }) after?: string,
    @Args('filter', { type: () => JobFilter, nullable: true }) filter?: JobFilter,
  ): Promise<JobConnection> {
    return this.query.list(caller, { first, after, filter });
  }

  @Query(() => Job)
  @RequirePermission('read', 'Job')
  job(@Caller() caller: Principal, @Args('id', { type: () => ID }) id: string): Promise<Job> {
    return this.query.get(caller, id);
  }

  @ResolveField(() => [JobEvent], { description: 'the job\'s history and log lines, oldest first (the last 1,000 log lines are kept)' })
  @RequirePermission('read', 'Job')
  events(@Caller() caller: Principal, @Parent() job: Job, @Args('first', { type: () => Int, nullable: true }) first?: number): Promise<JobEvent[]> {
    return this.query.events(caller, job.id, first);
  }

  @Mutation(() => [Job], { description: 'Backs up the policy\'s resources (or one of them) now; resources with an active backup are left alone' })
  @RequirePermission('create', 'Job')
  runPolicyNow(
    @Caller() caller: Principal, @RequestId() requestId: string,
    @Args('policyId', { type: () => ID }) policyId: string, @Args('resourceId', { type: () => ID, nullable: true }) resourceId?: string,
  ): Promise<Job[]> {
    return this.commands.runPolicyNow(caller, policyId, resourceId ?? undefined, requestId);
  }

  @Mutation(() => Job, { description: 'Restores `snapshotId:path` into `targetPath` on `targetAgentId`' })
  @RequirePermission('create', 'Job')
  startRestore(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: StartRestoreInput): Promise<Job> {
    return this.commands.startRestore(caller, input, requestId);
  }

  @Mutation(() => Job, { description: 'Checks a store (structure; with readData every blob)' })
  @RequirePermission('create', 'Job')
  startCheck(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: StartCheckInput): Promise<Job> {
    return this.commands.startCheck(caller, input, requestId);
  }

  @Mutation(() => Job, { description: 'Cancels a queued job at once, or asks the agent running it to stop' })
  @RequirePermission('update', 'Job')
  cancelJob(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<Job> {
    return this.commands.cancel(caller, id, requestId);
  }
}
