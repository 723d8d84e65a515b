import { Inject, Injectable } from '@nestjs/common';
import type { Database, TenantTx } from '@arca/db';
import { DATABASE } from '../database/database.tokens.ts';
import { JobEvents } from '../jobs/job-events.ts';
import { JobWakeups } from '../jobs/job-wakeups.ts';
import { SchedulerJobs } from './scheduler-jobs.ts';

/**
 * Runs a tenant transaction that queues jobs through SchedulerJobs and, once it committed, tells
 * this replica: its waiting pollers wake at once (on PGlite there is no NOTIFY) and JobEvents
 * reports the jobs as queued. Nothing is announced for a transaction that rolled back.
 */
@Injectable()
export class JobAnnouncer {
  private readonly db: Database;
  private readonly writer: SchedulerJobs;
  private readonly wakeups: JobWakeups;
  private readonly events: JobEvents;

  constructor(@Inject(DATABASE) db: Database, writer: SchedulerJobs, wakeups: JobWakeups, events: JobEvents) {
    this.db = db;
    this.writer = writer;
    this.wakeups = wakeups;
    this.events = events;
  }

  async run<T>(orgId: string, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    let queued: ReturnType<SchedulerJobs['takeQueued']> = [];
    const result = await this.db.withTenant(orgId, async (tx) => {
      const value = await fn(tx);
      queued = this.writer.takeQueued(tx);
      return value;
    });
    for (const job of queued) {
      this.wakeups.wake(job.orgId, job.agentId);
      this.events.emitQueued({ orgId: job.orgId, jobId: job.jobId, agentId: job.agentId, status: 'queued' });
    }
    return result;
  }
}
