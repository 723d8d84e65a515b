import { Inject, Injectable } from '@nestjs/common';
import { and, desc, eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import { jobs, policies, snapshots, stores, type Database, type JobRow, type TenantTx } from '@arca/db';
import { DATABASE } from '../database/database.tokens.ts';
import { StoreService } from '../stores/store.service.ts';
import { CLOCK, type Clock } from './clock.ts';
import { JobAnnouncer } from './job-announcer.ts';
import { resourceTag, SCHEDULER_ACTOR, SchedulerJobs } from './scheduler-jobs.ts';
import { SCHEDULER_LOGGER } from './scheduler.service.ts';
import { followUpKinds } from './slot-planning.ts';

/**
 * What a finished job sets off (docs/fleet.md §1, §5): an `init` decides its store's status; a
 * successful scheduled backup queues replicate (copy store), forget (retention; never on an
 * immutable store) and restore-test (when the last successful one is older than the policy's
 * interval). Meant to run on the replica that recorded the completion, once per completion: it is
 * subscribed to the job queue's completion events where the app wires them (app.module.ts).
 */
@Injectable()
export class FollowUpService {
  private readonly db: Database;
  private readonly writer: SchedulerJobs;
  private readonly announcer: JobAnnouncer;
  private readonly storesService: StoreService;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(@Inject(DATABASE) db: Database, writer: SchedulerJobs, announcer: JobAnnouncer, storesService: StoreService, @Inject(CLOCK) clock: Clock, @Inject(SCHEDULER_LOGGER) logger: Logger) {
    this.db = db;
    this.writer = writer;
    this.announcer = announcer;
    this.storesService = storesService;
    this.clock = clock;
    this.logger = logger;
  }

  /**
   * For event listeners: never throws (a failed follow-up is logged; the completion stands).
   * When the completion's kind is known, jobs that set nothing off (check, restore, forget, …:
   * most completions of a fleet) cost no read of the job.
   */
  onCompleted(orgId: string, jobId: string, kind?: string): void {
    if (kind != null && kind !== 'init' && kind !== 'backup') return;
    this.handle(orgId, jobId).catch((err: unknown) => this.logger.error({ err, orgId, jobId }, 'follow-up of a completed job failed'));
  }

  /** What happens once `jobId` has completed; returns the follow-up jobs queued. */
  async handle(orgId: string, jobId: string): Promise<string[]> {
    const [job] = await this.db.readTenant(orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId))));
    if (job == null) return [];
    if (job.storeId == null) return [];
    if (job.kind === 'init') {
      if (job.status === 'succeeded') await this.storesService.recordInitOutcome(orgId, job.storeId, job.id, 'ready');
      else if (job.status === 'failed' || job.status === 'cancelled') await this.storesService.recordInitOutcome(orgId, job.storeId, job.id, 'failed');
      return [];
    }
    if (job.kind !== 'backup' || job.status !== 'succeeded' || job.policyId == null || job.resourceId == null) return [];
    return this.announcer.run(orgId, (tx) => this.queueFollowUps(tx, orgId, job, job.storeId!));
  }

  private async queueFollowUps(tx: TenantTx, orgId: string, job: JobRow, storeId: string): Promise<string[]> {
    const [policy] = await tx.select().from(policies).where(and(eq(policies.orgId, orgId), eq(policies.id, job.policyId!)));
    if (policy == null) return [];
    const [store] = await tx.select({ immutable: stores.immutable }).from(stores).where(and(eq(stores.orgId, orgId), eq(stores.id, storeId)));
    const [lastTest] = await tx.select({ finishedAt: jobs.finishedAt }).from(jobs)
      .where(and(eq(jobs.orgId, orgId), eq(jobs.resourceId, job.resourceId!), eq(jobs.kind, 'restore-test'), eq(jobs.status, 'succeeded')))
      .orderBy(desc(jobs.finishedAt)).limit(1);
    const made = await tx.select({ snapshotId: snapshots.snapshotId }).from(snapshots)
      .where(and(eq(snapshots.orgId, orgId), eq(snapshots.jobId, job.id), eq(snapshots.storeId, storeId)));
    const kinds = followUpKinds(
      { copyStoreId: policy.copyStoreId ?? null, retention: (policy.retention as Record<string, number> | null) ?? null, restoreTestEveryDays: policy.restoreTestEveryDays ?? null },
      lastTest?.finishedAt ?? null, this.clock.now(),
    );
    const ids: string[] = [];
    const base = { agentId: job.agentId, storeId: storeId, resourceId: job.resourceId, policyId: policy.id, requestedBy: SCHEDULER_ACTOR };
    const why = `after backup ${job.id}`;
    for (const kind of kinds) {
      let id: string | null;
      if (kind === 'replicate') {
        id = await this.writer.enqueue(tx, orgId, { ...base, kind, copyStoreId: policy.copyStoreId, spec: { snapshotIds: made.map((s) => s.snapshotId) } }, why);
      } else if (kind === 'forget') {
        // an immutable store keeps everything: retention is not applied there
        if (store?.immutable === true) continue;
        id = await this.writer.enqueue(tx, orgId, { ...base, kind, spec: { retention: policy.retention, prune: true, tags: [resourceTag(job.resourceId!)] } }, why);
      } else {
        id = await this.writer.enqueue(tx, orgId, { ...base, kind, spec: { snapshotId: made[0]?.snapshotId ?? 'latest', resourceId: job.resourceId } }, why);
      }
      if (id != null) ids.push(id);
    }
    return ids;
  }
}
