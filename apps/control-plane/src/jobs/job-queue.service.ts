import { Inject, Injectable } from '@nestjs/common';
import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { columnList, jobEvents, jobs, resultRows, rowFromDriver, snapshots, stores, type Database, type JobRow, type JobStatus, type StoreRow, type TenantTx } from '@arca/db';
import type { JobCompleteRequest, JobLogLine, Progress } from '@arca/contracts';
import { AgentApiErrorCode } from '@arca/contracts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { sqlState } from '../errors/input-validation.ts';
import { SchedulerJobs, type NewJob } from '../scheduler/scheduler-jobs.ts';
import { JobEvents } from './job-events.ts';
import { JOB_PROGRESS_CHANNEL, JobWakeups, ORIGIN } from './job-wakeups.ts';

/** Log lines kept per job (docs/fleet.md §6): older `log` events are trimmed. */
export const MAX_LOG_EVENTS_PER_JOB = 1000;
const MAX_BACKOFF_MS = 3_600_000;
/** A job an agent holds: its lease, heartbeats and token refreshes are valid only in these statuses. */
export const ACTIVE_JOB_STATUSES: readonly JobStatus[] = ['leased', 'running'];
const ACTIVE = ACTIVE_JOB_STATUSES;
const UNIQUE_VIOLATION = '23505';

/** A freshly leased job with the stores it names (its store and, for replication, the copy store). */
export type LeasedJobRow = JobRow & { leasedStores: StoreRow[] };

/** The job was not leased to this agent and attempt (any more): the agent abandons it (409). */
export class LeaseLostError extends ControlPlaneError {
  readonly agentCode = AgentApiErrorCode.LeaseLost;

  constructor() {
    super(ControlPlaneErrorCode.Conflict, 'this job is no longer leased to this agent and attempt: abandon it');
  }
}

export interface CompletionResult {
  duplicate: boolean;
  status: JobStatus;
}

/**
 * The job queue (docs/fleet.md §4), in the tenant's transactions: leasing with
 * FOR UPDATE SKIP LOCKED (two replicas never hand one job out twice), renewals by job heartbeats,
 * attempt-checked idempotent completions, cancellation, and the requeue/fail decision of the
 * lease sweeper. Every state change appends to `job_events` while holding the job's row lock.
 */
@Injectable()
export class JobQueueService {
  private readonly db: Database;
  private readonly config: ControlPlaneConfig;
  private readonly writer: SchedulerJobs;
  private readonly events: JobEvents;
  private readonly wakeups: JobWakeups;

  constructor(@Inject(DATABASE) db: Database, @Inject(CONFIG) config: ControlPlaneConfig, writer: SchedulerJobs, events: JobEvents, wakeups: JobWakeups) {
    this.db = db;
    this.config = config;
    this.writer = writer;
    this.events = events;
    this.wakeups = wakeups;
  }

  /** Queues a job (its `queued` event and the pollers' NOTIFY commit with it); null when its schedule slot is taken. */
  async enqueue(orgId: string, job: NewJob, message = 'queued'): Promise<string | null> {
    const id = await this.db.withTenant(orgId, (tx) => this.writer.enqueue(tx, orgId, job, message));
    if (id != null) {
      this.wakeups.wake(orgId, job.agentId);
      this.events.emitQueued({ orgId, jobId: id, agentId: job.agentId, status: 'queued' });
    }
    return id;
  }

  /**
   * Leases up to `slots` ready jobs of the agent, in priority then age order, with the stores they
   * name. One statement — pick (FOR UPDATE SKIP LOCKED), mark leased, append the `leased` event,
   * join the stores — sent with its transaction in one round trip: every long poll that wakes runs
   * it, so its cost is the fleet's lease latency (bench:fleet). The event's sequence number is
   * read from the statement's snapshot; if another transaction appended an event to the job in
   * the instant before the row was locked, the insert collides (unique seq) and the lease is
   * retried statement by statement.
   */
  async lease(orgId: string, agentId: string, slots: number): Promise<LeasedJobRow[]> {
    try {
      return await this.leaseInOneStatement(orgId, agentId, slots);
    } catch (err) {
      if (sqlState(err) !== UNIQUE_VIOLATION) throw err;
      return this.leaseStepByStep(orgId, agentId, slots);
    }
  }

  private async leaseInOneStatement(orgId: string, agentId: string, slots: number): Promise<LeasedJobRow[]> {
    const leaseS = this.config.fleet.leaseSeconds;
    const raw = await this.db.writeStatement<Record<string, unknown>>(orgId, sql`
      WITH leased AS (${leaseReadyJobs(orgId, agentId, slots, leaseS)} RETURNING jobs.*
      ), logged AS (
        INSERT INTO job_events (org_id, job_id, seq, kind, level, message, data)
        SELECT l.org_id, l.id, (SELECT coalesce(max(e.seq), 0) + 1 FROM job_events e WHERE e.org_id = l.org_id AND e.job_id = l.id),
               'leased', 'info', 'leased by agent ' || ${agentId}::text || ' (attempt ' || l.attempt || ')',
               jsonb_build_object('agentId', ${agentId}::text, 'attempt', l.attempt)
        FROM leased l
      )
      SELECT ${columnList(jobs, 'l', 'j_')}, ${columnList(stores, 's', 's_')}, ${columnList(stores, 'c', 'c_')}
      FROM leased l
      LEFT JOIN stores s ON s.org_id = l.org_id AND s.id = l.store_id
      LEFT JOIN stores c ON c.org_id = l.org_id AND c.id = l.copy_store_id
      ORDER BY l.priority, l.created_at`);
    return raw.map((r) => {
      const job = rowFromDriver<JobRow>(jobs, r, 'j_');
      const leasedStores = [r.s_id != null ? rowFromDriver<StoreRow>(stores, r, 's_') : null, r.c_id != null ? rowFromDriver<StoreRow>(stores, r, 'c_') : null];
      return Object.assign(job, { leasedStores: leasedStores.filter((x): x is StoreRow => x != null) });
    });
  }

  private async leaseStepByStep(orgId: string, agentId: string, slots: number): Promise<LeasedJobRow[]> {
    const leaseS = this.config.fleet.leaseSeconds;
    return this.db.withTenant(orgId, async (tx) => {
      const rows = resultRows<{ id: string }>(await tx.execute(sql`${leaseReadyJobs(orgId, agentId, slots, leaseS)} RETURNING jobs.id`));
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.id);
      const leased = await tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), inArray(jobs.id, ids)));
      for (const job of leased) await appendEvent(tx, orgId, job.id, 'leased', 'info', `leased by agent ${agentId} (attempt ${job.attempt})`, { agentId, attempt: job.attempt });
      const storeIds = [...new Set(leased.flatMap((j) => [j.storeId, j.copyStoreId]).filter((x): x is string => x != null))];
      const storeRows = storeIds.length === 0 ? [] : await tx.select().from(stores).where(and(eq(stores.orgId, orgId), inArray(stores.id, storeIds)));
      return leased
        .sort((a, b) => a.priority - b.priority || a.createdAt.getTime() - b.createdAt.getTime())
        .map((job) => Object.assign(job, { leasedStores: storeRows.filter((st) => st.id === job.storeId || st.id === job.copyStoreId) }));
    });
  }

  /** A job heartbeat: renews the lease, records progress and log lines; LeaseLostError when not this agent's attempt. */
  async renew(orgId: string, agentId: string, jobId: string, attempt: number, progress?: Progress, logs?: JobLogLine[]): Promise<{ leaseExpiresAt: Date; cancelRequested: boolean }> {
    const leaseS = this.config.fleet.leaseSeconds;
    const out = await this.db.withTenant(orgId, async (tx) => {
      const job = await lockActive(tx, orgId, agentId, jobId, attempt);
      const [row] = await tx.update(jobs).set({
        status: 'running',
        startedAt: job.startedAt ?? sql`now()`,
        leaseExpiresAt: sql`now() + make_interval(secs => ${leaseS})`,
        ...(progress != null ? { progress } : {}),
        updatedAt: sql`now()`,
      }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId))).returning({ leaseExpiresAt: jobs.leaseExpiresAt, cancelRequested: jobs.cancelRequested });
      if (job.status === 'leased') await appendEvent(tx, orgId, jobId, 'running', 'info', 'the agent started the job', { attempt });
      if (logs != null && logs.length > 0) {
        const [first] = resultRows<{ next: number }>(await tx.execute(sql`SELECT coalesce(max(seq), 0) + 1 AS next FROM job_events WHERE org_id = ${orgId} AND job_id = ${jobId}`));
        await tx.insert(jobEvents).values(logs.map((line, i) => ({
          orgId, jobId, seq: Number(first?.next ?? 1) + i, time: new Date(line.time), kind: 'log', level: line.level, message: line.message, data: { attempt },
        })));
        // keep the newest log lines only; lifecycle events are never trimmed
        await tx.execute(sql`
          DELETE FROM job_events WHERE org_id = ${orgId} AND job_id = ${jobId} AND kind = 'log' AND seq <= (
            SELECT seq FROM job_events WHERE org_id = ${orgId} AND job_id = ${jobId} AND kind = 'log'
            ORDER BY seq DESC OFFSET ${MAX_LOG_EVENTS_PER_JOB} LIMIT 1)`);
      }
      if (progress != null) {
        await tx.execute(sql`SELECT pg_notify(${JOB_PROGRESS_CHANNEL}, ${JSON.stringify({ orgId, jobId, progress, origin: ORIGIN })})`);
      }
      return { leaseExpiresAt: row!.leaseExpiresAt!, cancelRequested: row!.cancelRequested };
    });
    if (progress != null) this.events.emitProgress({ orgId, jobId, progress });
    return out;
  }

  /**
   * Records an attempt's outcome once: a repeat of the same completion answers duplicate; a stale
   * attempt or another agent gets LeaseLostError. A retryable failure with attempts left goes back
   * to the queue with backoff. Backup snapshots go to the catalog with the completion.
   */
  async complete(orgId: string, agentId: string, jobId: string, report: JobCompleteRequest): Promise<CompletionResult> {
    // the common case in one statement and round trip: the agent's current attempt ends (with its
    // catalog rows) and there is no retry to decide; anything else (and a miss) takes the full path
    const simple = !(report.outcome === 'failed' && report.error?.retryable === true);
    const kind = simple ? await this.completeInOneStatement(orgId, agentId, jobId, report) : null;
    if (kind != null) {
      this.events.emitCompleted({ orgId, jobId, agentId, status: report.outcome as JobStatus, kind });
      return { duplicate: false, status: report.outcome as JobStatus };
    }
    const outcome = await this.db.withTenant(orgId, async (tx) => {
      const [job] = await tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId))).for('update');
      if (job == null || job.agentId !== agentId) throw new LeaseLostError();
      if (!ACTIVE.includes(job.status)) {
        const [seen] = resultRows<{ n: number }>(await tx.execute(sql`
          SELECT 1 AS n FROM job_events WHERE org_id = ${orgId} AND job_id = ${jobId}
            AND kind IN ('completed', 'requeued') AND data->>'completedAttempt' = ${String(report.attempt)} LIMIT 1`));
        if (seen != null) return { duplicate: true, status: job.status, changed: false };
        throw new LeaseLostError();
      }
      if (job.attempt !== report.attempt) throw new LeaseLostError();
      if (report.snapshots != null && report.snapshots.length > 0) await this.recordSnapshots(tx, orgId, job, report.snapshots);
      const retry = report.outcome === 'failed' && report.error?.retryable === true && job.attempt < job.maxAttempts && !job.cancelRequested;
      if (retry) {
        const delayMs = backoffMs(this.config.fleet.retryBackoffMs, job.attempt);
        await tx.update(jobs).set({
          status: 'queued', attempt: job.attempt + 1, runAfter: sql`now() + make_interval(secs => ${delayMs / 1000})`, leaseExpiresAt: null,
          error: report.error ?? null, result: report.result ?? null, updatedAt: sql`now()`,
        }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId)));
        await appendEvent(tx, orgId, jobId, 'requeued', 'warn', `attempt ${job.attempt} failed (${report.error?.code ?? 'error'}); retrying`, {
          completedAttempt: report.attempt, attempt: job.attempt + 1, delayMs, error: report.error ?? null,
        });
        return { duplicate: false, status: 'queued' as JobStatus, changed: false };
      }
      await tx.update(jobs).set({
        status: report.outcome, leaseExpiresAt: null, finishedAt: sql`now()`, updatedAt: sql`now()`,
        error: report.error ?? null, result: report.result ?? null,
      }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId)));
      await appendEvent(tx, orgId, jobId, 'completed', report.outcome === 'failed' ? 'error' : 'info', `${report.outcome} (attempt ${report.attempt})`, {
        completedAttempt: report.attempt, status: report.outcome, error: report.error ?? null,
      });
      return { duplicate: false, status: report.outcome as JobStatus, changed: true, kind: job.kind as string | undefined };
    });
    if (outcome.changed) this.events.emitCompleted({ orgId, jobId, agentId, status: outcome.status, kind: 'kind' in outcome ? outcome.kind : undefined });
    return { duplicate: outcome.duplicate, status: outcome.status };
  }

  /**
   * Ends the agent's current attempt as `report.outcome` with its `completed` event and the
   * snapshots it reported in the catalog (only for the job's own stores, as `recordSnapshots`), in
   * one statement; answers the job's kind, or null when the job is not this agent's active attempt
   * (the full path then answers duplicate or LEASE_LOST) or when the event's sequence number
   * collided (see `lease`).
   */
  private async completeInOneStatement(orgId: string, agentId: string, jobId: string, report: JobCompleteRequest): Promise<string | null> {
    const level = report.outcome === 'failed' ? 'error' : 'info';
    const data = { completedAttempt: report.attempt, status: report.outcome, error: report.error ?? null };
    try {
      const rows = await this.db.writeStatement<{ kind: string }>(orgId, sql`
        WITH done AS (
          UPDATE jobs SET status = ${report.outcome}, lease_expires_at = NULL, finished_at = now(), updated_at = now(),
                 error = ${report.error == null ? null : JSON.stringify(report.error)}::jsonb, result = ${report.result == null ? null : JSON.stringify(report.result)}::jsonb
          WHERE org_id = ${orgId} AND id = ${jobId} AND agent_id = ${agentId} AND attempt = ${report.attempt} AND status IN ('leased', 'running')
          RETURNING org_id, id, kind, agent_id, resource_id, store_id, copy_store_id
        ), cataloged AS (
          INSERT INTO snapshots (org_id, store_id, snapshot_id, resource_id, agent_id, job_id, time, hostname, tags, parent,
                                 total_bytes, file_count, dir_count, new_bytes, stored_bytes, duration_ms)
          SELECT d.org_id, s.id, m."snapshotId", d.resource_id, d.agent_id, d.id, m.time::timestamptz, m.hostname,
                 ARRAY(SELECT jsonb_array_elements_text(m.tags)), m.parent, m."totalBytes", m."fileCount", m."dirCount", m."newBytes", m."storedBytes", m."durationMs"
          FROM done d
          CROSS JOIN jsonb_to_recordset(${JSON.stringify(report.snapshots ?? [])}::jsonb) AS m(
            "storeId" text, "snapshotId" text, time text, hostname text, tags jsonb, parent text,
            "totalBytes" bigint, "fileCount" bigint, "dirCount" bigint, "newBytes" bigint, "storedBytes" bigint, "durationMs" bigint)
          JOIN stores s ON s.org_id = d.org_id AND s.store_id = m."storeId" AND s.id IN (d.store_id, d.copy_store_id)
          ON CONFLICT DO NOTHING
        ), logged AS (
          INSERT INTO job_events (org_id, job_id, seq, kind, level, message, data)
          SELECT d.org_id, d.id, (SELECT coalesce(max(e.seq), 0) + 1 FROM job_events e WHERE e.org_id = d.org_id AND e.job_id = d.id),
                 'completed', ${level}, ${`${report.outcome} (attempt ${report.attempt})`}, ${JSON.stringify(data)}::jsonb
          FROM done d
        )
        SELECT kind FROM done`);
      return rows[0]?.kind ?? null;
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) return null;
      throw err;
    }
  }

  /** Cancels a queued job at once; a leased or running one is asked to stop (the agent completes it as cancelled). */
  async cancel(orgId: string, jobId: string, actor: string): Promise<JobStatus | null> {
    const result = await this.db.withTenant(orgId, async (tx) => {
      const [job] = await tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId))).for('update');
      if (job == null) return null;
      if (job.status === 'queued') {
        await tx.update(jobs).set({ status: 'cancelled', finishedAt: sql`now()`, updatedAt: sql`now()` }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId)));
        await appendEvent(tx, orgId, jobId, 'completed', 'info', `cancelled by ${actor} before it started`, { status: 'cancelled', actor });
        return { job, status: 'cancelled' as JobStatus };
      }
      if (ACTIVE.includes(job.status) && !job.cancelRequested) {
        await tx.update(jobs).set({ cancelRequested: true, updatedAt: sql`now()` }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId)));
        await appendEvent(tx, orgId, jobId, 'cancel-requested', 'info', `${actor} asked the agent to stop`, { actor });
      }
      return { job, status: job.status };
    });
    if (result == null) return null;
    if (result.status === 'cancelled' && result.job.status === 'queued') this.events.emitCompleted({ orgId, jobId, agentId: result.job.agentId, status: 'cancelled' });
    return result.status;
  }

  /** IDs of the agent's jobs that were asked to stop (answered in agent heartbeats). */
  async cancelRequested(orgId: string, agentId: string, jobIds: string[]): Promise<string[]> {
    if (jobIds.length === 0) return [];
    const rows = await this.db.readTenant(orgId, (tx) => tx.select({ id: jobs.id, status: jobs.status, cancel: jobs.cancelRequested }).from(jobs)
      .where(and(eq(jobs.orgId, orgId), eq(jobs.agentId, agentId), inArray(jobs.id, jobIds))));
    // a job this agent reports running that is no longer active here is stopped too
    const known = new Map(rows.map((r) => [r.id, r]));
    return jobIds.filter((id) => { const r = known.get(id); return r == null || r.cancel || !ACTIVE.includes(r.status); });
  }

  /**
   * The lease sweeper's work (every replica, docs/fleet.md §4): jobs whose lease expired are
   * requeued with attempt + 1 and backoff, or fail with LEASE_EXPIRED once attempts are used up.
   * Another replica handling the same job at the same time is skipped (SKIP LOCKED).
   */
  async expireLeases(maxRows = 500): Promise<number> {
    const due = await this.db.expiredLeases(maxRows);
    let handled = 0;
    for (const { orgId, jobId } of due) {
      const change = await this.db.withTenant(orgId, async (tx) => {
        const [job] = await tx.select().from(jobs)
          .where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId), inArray(jobs.status, ACTIVE), sql`${jobs.leaseExpiresAt} < now()`))
          .for('update', { skipLocked: true });
        if (job == null) return null;
        if (job.attempt < job.maxAttempts && !job.cancelRequested) {
          const delayMs = backoffMs(this.config.fleet.retryBackoffMs, job.attempt);
          await tx.update(jobs).set({ status: 'queued', attempt: job.attempt + 1, runAfter: sql`now() + make_interval(secs => ${delayMs / 1000})`, leaseExpiresAt: null, updatedAt: sql`now()` })
            .where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId)));
          await appendEvent(tx, orgId, jobId, 'requeued', 'warn', `the lease of attempt ${job.attempt} expired without a heartbeat; queued again`, { expiredAttempt: job.attempt, attempt: job.attempt + 1, delayMs });
          return { job, status: 'queued' as JobStatus };
        }
        const error = job.cancelRequested
          ? null
          : { code: 'LEASE_EXPIRED', message: 'the agent stopped sending job heartbeats and every attempt is used up', retryable: false };
        const status: JobStatus = job.cancelRequested ? 'cancelled' : 'failed';
        await tx.update(jobs).set({ status, leaseExpiresAt: null, finishedAt: sql`now()`, updatedAt: sql`now()`, error }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId)));
        await appendEvent(tx, orgId, jobId, 'completed', 'error', `the lease of attempt ${job.attempt} expired: ${status}${error != null ? ' (LEASE_EXPIRED)' : ''}`, { status, expiredAttempt: job.attempt });
        return { job, status };
      });
      if (change == null) continue;
      handled += 1;
      if (change.status === 'queued') this.wakeups.wake(orgId, change.job.agentId);
      else this.events.emitCompleted({ orgId, jobId, agentId: change.job.agentId, status: change.status });
    }
    return handled;
  }

  private async recordSnapshots(tx: TenantTx, orgId: string, job: JobRow, metas: NonNullable<JobCompleteRequest['snapshots']>): Promise<void> {
    // agents name stores by their Arca store ID; only the job's own stores may receive catalog rows
    const allowed = [job.storeId, job.copyStoreId].filter((s): s is string => s != null);
    if (allowed.length === 0) return;
    const rows = await tx.select({ id: stores.id, storeId: stores.storeId }).from(stores).where(and(eq(stores.orgId, orgId), inArray(stores.id, allowed)));
    const byArcaId = new Map(rows.map((r) => [r.storeId, r.id]));
    const values = metas.flatMap((m) => {
      const storeRowId = byArcaId.get(m.storeId);
      if (storeRowId == null) return [];
      return [{
        orgId, storeId: storeRowId, snapshotId: m.snapshotId, resourceId: job.resourceId, agentId: job.agentId, jobId: job.id,
        time: new Date(m.time), hostname: m.hostname, tags: m.tags, parent: m.parent ?? null, totalBytes: m.totalBytes, fileCount: m.fileCount,
        dirCount: m.dirCount, newBytes: m.newBytes, storedBytes: m.storedBytes, durationMs: m.durationMs,
      }];
    });
    if (values.length === 0) return;
    await tx.insert(snapshots).values(values).onConflictDoNothing();
  }
}

/**
 * The UPDATE that leases up to `slots` of the agent's ready jobs (priority, then age; rows another
 * transaction holds are skipped), without its RETURNING clause.
 */
function leaseReadyJobs(orgId: string, agentId: string, slots: number, leaseSeconds: number): SQL {
  return sql`
    UPDATE jobs SET status = 'leased', lease_expires_at = now() + make_interval(secs => ${leaseSeconds}), updated_at = now()
    FROM (
      SELECT id FROM jobs
      WHERE org_id = ${orgId} AND agent_id = ${agentId} AND status = 'queued' AND run_after <= now()
      ORDER BY priority, created_at
      LIMIT ${slots}
      FOR UPDATE SKIP LOCKED
    ) AS picked
    WHERE jobs.org_id = ${orgId} AND jobs.id = picked.id`;
}

async function lockActive(tx: TenantTx, orgId: string, agentId: string, jobId: string, attempt: number): Promise<JobRow> {
  const [job] = await tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.id, jobId))).for('update');
  if (job == null || job.agentId !== agentId || job.attempt !== attempt || !ACTIVE.includes(job.status)) throw new LeaseLostError();
  return job;
}

/** Appends to a job's history; the caller holds the job's row lock, which makes max(seq) + 1 safe. */
export async function appendEvent(tx: TenantTx, orgId: string, jobId: string, kind: string, level: 'debug' | 'info' | 'warn' | 'error', message: string, data: Record<string, unknown>): Promise<void> {
  await tx.insert(jobEvents).values({
    orgId, jobId, kind, level, message: message.slice(0, 4000), data,
    seq: sql`(SELECT coalesce(max(${jobEvents.seq}), 0) + 1 FROM ${jobEvents} WHERE ${jobEvents.orgId} = ${orgId} AND ${jobEvents.jobId} = ${jobId})`,
  });
}

export function backoffMs(baseMs: number, attempt: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attempt - 1), MAX_BACKOFF_MS);
}
