import { Args, ID, Resolver, Subscription } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller } from '../auth/request-context.ts';
import { JobEvents } from './job-events.ts';
import { JobQueryService } from './job-query.service.ts';
import { JobProgressUpdate } from './job.types.ts';

/** finished statuses: the subscription ends after reporting one */
const FINAL = new Set(['succeeded', 'partial', 'failed', 'cancelled']);
/** updates buffered for a slow subscriber; older progress is dropped first (the latest matters) */
const MAX_BUFFERED = 100;

/**
 * `jobProgress(jobId)`: a job's progress and status changes as they happen (JobEvents: this
 * replica's, plus progress NOTIFYed by the others). The caller must be allowed to read the job
 * when subscribing (NOT_FOUND otherwise, like `job(id)`); the stream ends once the job finished.
 */
@Resolver(() => JobProgressUpdate)
export class JobProgressResolver {
  private readonly events: JobEvents;
  private readonly query: JobQueryService;

  constructor(events: JobEvents, query: JobQueryService) {
    this.events = events;
    this.query = query;
  }

  @Subscription(() => JobProgressUpdate, { description: 'Progress and status of one job until it finishes' })
  @RequirePermission('read', 'Job')
  async jobProgress(@Caller() caller: Principal, @Args('jobId', { type: () => ID }) jobId: string): Promise<AsyncIterableIterator<{ jobProgress: JobProgressUpdate }>> {
    const job = await this.query.get(caller, jobId);
    const first: JobProgressUpdate = { jobId, status: job.status, progress: job.progress, event: null };
    return updates(first, (push) => {
      const offProgress = this.events.onProgress((e) => {
        if (e.orgId === caller.orgId && e.jobId === jobId) push({ jobId, status: 'running', progress: e.progress as unknown as Record<string, unknown>, event: null });
      });
      const offCompleted = this.events.onCompleted((c) => {
        if (c.orgId === caller.orgId && c.jobId === jobId) push({ jobId, status: c.status, progress: null, event: null });
      });
      return () => {
        offProgress();
        offCompleted();
      };
    });
  }
}

/** An async iterator over pushed updates, starting with `first`, ending after a final status. */
function updates(first: JobProgressUpdate, subscribe: (push: (u: JobProgressUpdate) => void) => () => void): AsyncIterableIterator<{ jobProgress: JobProgressUpdate }> {
  type Result = IteratorResult<{ jobProgress: JobProgressUpdate }>;
  const queue: JobProgressUpdate[] = [first];
  let waiting: ((r: Result) => void) | null = null;
  let done = false;
  let endAfterThis = false;
  const deliver = (u: JobProgressUpdate): Result => {
    if (FINAL.has(u.status)) endAfterThis = true;
    return { done: false, value: { jobProgress: u } };
  };
  const finish = (): Result => {
    done = true;
    unsubscribe();
    return { done: true, value: undefined };
  };
  const unsubscribe = subscribe((u) => {
    if (done || endAfterThis) return;
    if (waiting != null) {
      const w = waiting;
      waiting = null;
      w(deliver(u));
      return;
    }
    // a slow subscriber loses intermediate progress, never the final status
    if (queue.length >= MAX_BUFFERED) queue.splice(queue.findIndex((q) => !FINAL.has(q.status)), 1);
    queue.push(u);
  });
  const iterator: AsyncIterableIterator<{ jobProgress: JobProgressUpdate }> = {
    next(): Promise<Result> {
      if (done) return Promise.resolve({ done: true, value: undefined });
      if (endAfterThis) return Promise.resolve(finish());
      const u = queue.shift();
      if (u != null) return Promise.resolve(deliver(u));
      return new Promise((resolve) => { waiting = resolve; });
    },
    return(): Promise<Result> {
      const w = waiting;
      waiting = null;
      const r = finish();
      w?.(r);
      return Promise.resolve(r);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
