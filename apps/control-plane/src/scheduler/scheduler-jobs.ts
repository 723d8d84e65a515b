import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { JOB_SPEC_SCHEMAS, type PostgresConnection } from '@arca/contracts';
import { and, eq, sql } from 'drizzle-orm';
import { jobEvents, jobs, type JobKind, type PolicyRow, type ResourceRow, type TenantTx } from '@arca/db';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import type { ResourceSpec } from '../resources/resource-input.ts';

/**
 * The scheduler's writes to the queue, inside the transaction that holds the policy row: a
 * scheduled backup is inserted with ON CONFLICT DO NOTHING on (org, policy, resource, slot), the
 * second line of defence against double scheduling, and its `queued` event and the agents'
 * wake-up (NOTIFY, delivered at commit) travel with it.
 */
@Injectable()
export class SchedulerJobs {
  /** jobs queued in each open transaction, for JobAnnouncer to announce once it committed */
  private readonly queuedIn = new WeakMap<TenantTx, QueuedJob[]>();

  /** The jobs `tx` queued so far (and forgets them). */
  takeQueued(tx: TenantTx): QueuedJob[] {
    const list = this.queuedIn.get(tx) ?? [];
    this.queuedIn.delete(tx);
    return list;
  }

  /** true when the job was created (false: that slot already has its job) */
  async enqueueBackup(tx: TenantTx, orgId: string, policy: PolicyRow, resource: ResourceRow, scheduledFor: Date, coalescedSlots: number): Promise<boolean> {
    const id = await this.enqueue(tx, orgId, {
      kind: 'backup', agentId: resource.agentId, storeId: policy.storeId, resourceId: resource.id, policyId: policy.id, scheduledFor,
      spec: backupSpec(resource, policy), requestedBy: SCHEDULER_ACTOR,
    }, `scheduled by policy "${policy.name}"`, { scheduledFor: scheduledFor.toISOString(), coalescedSlots });
    return id != null;
  }

  /** Queues a job with its `queued` event and wakes the agent's pollers at commit; null when its slot is taken. */
  async enqueue(tx: TenantTx, orgId: string, job: NewJob, message: string, data: Record<string, unknown> = {}): Promise<string | null> {
    assertSpecFits(job);
    const id = randomUUID();
    const inserted = await tx.insert(jobs).values({
      orgId, id, kind: job.kind, status: 'queued', agentId: job.agentId, storeId: job.storeId, copyStoreId: job.copyStoreId ?? null,
      resourceId: job.resourceId ?? null, policyId: job.policyId ?? null, scheduledFor: job.scheduledFor ?? null, spec: job.spec, requestedBy: job.requestedBy,
    }).onConflictDoNothing().returning({ id: jobs.id });
    if (inserted.length === 0) return null;
    await tx.insert(jobEvents).values({ orgId, jobId: id, seq: 1, kind: 'queued', level: 'info', message, data });
    let list = this.queuedIn.get(tx);
    if (list == null) this.queuedIn.set(tx, list = []);
    list.push({ orgId, jobId: id, agentId: job.agentId });
    await tx.execute(sql`SELECT pg_notify('arca_jobs', ${`${orgId}:${job.agentId}`})`);
    return id;
  }

  /** Records a slot skipped because the resource's previous backup is still active, on that job. */
  async recordSkip(tx: TenantTx, orgId: string, activeJobId: string, policyId: string, resourceId: string, scheduledFor: Date): Promise<void> {
    // the job row lock orders this append with the job's own events (heartbeats, completion)
    await tx.select({ id: jobs.id }).from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.id, activeJobId))).for('update');
    await tx.insert(jobEvents).values({
      orgId, jobId: activeJobId,
      seq: sql`(SELECT coalesce(max(${jobEvents.seq}), 0) + 1 FROM ${jobEvents} WHERE ${jobEvents.orgId} = ${orgId} AND ${jobEvents.jobId} = ${activeJobId})`,
      kind: 'skipped', level: 'warn', message: 'a scheduled backup was skipped: this backup of the resource is still active',
      data: { policyId, resourceId, scheduledFor: scheduledFor.toISOString() },
    });
  }
}

/** `requested_by` of scheduled runs and follow-ups */
export const SCHEDULER_ACTOR = 'scheduler';

export interface QueuedJob {
  orgId: string;
  jobId: string;
  agentId: string;
}

export interface NewJob {
  kind: JobKind;
  agentId: string;
  storeId: string;
  copyStoreId?: string | null;
  resourceId?: string | null;
  policyId?: string | null;
  scheduledFor?: Date | null;
  spec: Record<string, unknown>;
  /** the audit actor, or SCHEDULER_ACTOR */
  requestedBy: string;
}

export function backupSpec(resource: ResourceRow, policy: Pick<PolicyRow, 'id'>): Record<string, unknown> {
  const spec = resource.spec as ResourceSpec;
  // the resource tag scopes a later forget to this resource's snapshots
  const tags = [resourceTag(resource.id), `policy-${policy.id}`];
  if (!('database' in spec)) return { resourceId: resource.id, paths: spec.paths, excludes: spec.excludes, tags };
  // where the agent connects; never a password (the agent's machine holds credentials)
  const postgres: PostgresConnection = {
    database: spec.database,
    ...(spec.host ? { host: spec.host } : {}),
    ...(spec.port ? { port: spec.port } : {}),
    ...(spec.user ? { user: spec.user } : {}),
  };
  return { resourceId: resource.id, postgres, tags };
}

export function resourceTag(resourceId: string): string {
  return `resource-${resourceId}`;
}

/**
 * A job's spec must be what the agent will accept (libs/contracts agent-api): a mismatch is a bug
 * here, caught before the job is queued rather than failing on the agent.
 */
function assertSpecFits(job: NewJob): void {
  const parsed = JOB_SPEC_SCHEMAS[job.kind].safeParse(job.spec);
  if (!parsed.success) throw new ControlPlaneError(ControlPlaneErrorCode.Internal, `a ${job.kind} job's spec does not fit the agent API: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}
