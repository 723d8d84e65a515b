import { Inject, Injectable } from '@nestjs/common';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import { agents, jobEvents, jobs, policies, snapshots, stores, type Database, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import { effectivePolicy } from '../policies/effective-policy.ts';
import { candidate, PolicyService } from '../policies/policy.service.ts';
import { ResourceService } from '../resources/resource.service.ts';
import { JobAnnouncer } from '../scheduler/job-announcer.ts';
import { backupSpec, SchedulerJobs } from '../scheduler/scheduler-jobs.ts';
import { JobEvents } from './job-events.ts';
import { jobLabels, withLabels } from './job-labels.ts';
import { toJob } from './job-query.service.ts';
import type { Job, StartCheckInput, StartRestoreInput } from './job.types.ts';

const uuid = z.uuid('must be an ID');
const restoreSchema = z.object({
  storeId: uuid,
  snapshotId: z.string().regex(/^[0-9a-f]{64}$/, 'a snapshot ID is 64 hex characters'),
  path: z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'a path inside the snapshot starts with "/"').default('/'),
  targetAgentId: uuid,
  targetPath: z.string().min(1).max(4096).refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute directory on the target agent'),
});
const checkSchema = z.object({
  storeId: uuid,
  readData: z.boolean().default(false),
  subsetPercent: z.number().min(1).max(100).optional(),
  agentId: uuid.optional(),
});

/** Jobs people start: run a policy now, restore, check, cancel — each audited. */
@Injectable()
export class JobCommandService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly writer: SchedulerJobs;
  private readonly announcer: JobAnnouncer;
  private readonly events: JobEvents;
  private readonly resources: ResourceService;
  private readonly policies: PolicyService;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, writer: SchedulerJobs, resources: ResourceService, policiesService: PolicyService, announcer: JobAnnouncer, events: JobEvents) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.writer = writer;
    this.announcer = announcer;
    this.events = events;
    this.resources = resources;
    this.policies = policiesService;
  }

  /** Backups now for the policy's resources (or one of them), outside the schedule; active ones are not doubled. */
  async runPolicyNow(principal: Principal, policyId: string, resourceId: string | undefined, requestId: string): Promise<Job[]> {
    this.access.require(principal, 'create', 'Job', undefined, requestId);
    parseInput(uuid, policyId);
    if (resourceId != null) parseInput(uuid, resourceId);
    return this.announcer.run(principal.orgId, async (tx) => {
      const [policy] = await tx.select().from(policies).where(and(eq(policies.orgId, principal.orgId), eq(policies.id, policyId)));
      if (policy == null) throw notFound('the policy');
      const candidates = (await this.policies.enabledPolicies(tx, principal.orgId)).map(candidate);
      let targets = (await this.resources.withLabels(tx, principal.orgId)).filter((r) => (resourceId == null || r.row.id === resourceId) && effectivePolicy(candidates, r.labels)?.id === policy.id);
      if (resourceId != null && targets.length === 0) {
        throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'the resource is not governed by this policy (it is not its effective policy): run its own policy instead', {
          fields: [{ path: 'resourceId', message: 'not governed by this policy' }],
        });
      }
      this.access.require(principal, 'create', 'Job', targets.map((t) => ({ labels: t.labels })), requestId);
      const active = targets.length === 0 ? [] : await tx.select({ resourceId: jobs.resourceId }).from(jobs)
        .where(and(eq(jobs.orgId, principal.orgId), eq(jobs.kind, 'backup'), inArray(jobs.status, ['queued', 'leased', 'running']), inArray(jobs.resourceId, targets.map((t) => t.row.id))));
      const busy = new Set(active.map((a) => a.resourceId));
      targets = targets.filter((t) => !busy.has(t.row.id));
      const ids: string[] = [];
      for (const t of targets) {
        const id = await this.writer.enqueue(tx, principal.orgId, {
          kind: 'backup', agentId: t.row.agentId, storeId: policy.storeId, resourceId: t.row.id, policyId: policy.id, spec: backupSpec(t.row, policy), requestedBy: principal.actor,
        }, `started now by ${principal.actor}`);
        if (id != null) ids.push(id);
      }
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'policy.run_now', target: `policy:${policyId}`, payload: { jobIds: ids, skippedActive: [...busy], ...authOf(principal) }, requestId,
      });
      return this.load(tx, principal.orgId, ids);
    });
  }

  async startRestore(principal: Principal, input: StartRestoreInput, requestId: string): Promise<Job> {
    this.access.require(principal, 'create', 'Job', undefined, requestId);
    const data = parseInput(restoreSchema, stripNulls(input));
    return this.announcer.run(principal.orgId, async (tx) => {
      const store = await this.requireStore(tx, principal, data.storeId, 'read', requestId);
      this.access.require(principal, 'create', 'Job', [store], requestId);
      await this.requireAgent(tx, principal.orgId, data.targetAgentId, 'targetAgentId');
      const [snapshot] = await tx.select({ id: snapshots.snapshotId }).from(snapshots)
        .where(and(eq(snapshots.orgId, principal.orgId), eq(snapshots.storeId, store.id), eq(snapshots.snapshotId, data.snapshotId)));
      if (snapshot == null) throw notFound('the snapshot');
      const id = await this.writer.enqueue(tx, principal.orgId, {
        kind: 'restore', agentId: data.targetAgentId, storeId: store.id, spec: { snapshotId: data.snapshotId, path: data.path, targetPath: data.targetPath }, requestedBy: principal.actor,
      }, `restore requested by ${principal.actor}`);
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'job.restore_started', target: `job:${id}`,
        payload: { storeId: store.id, snapshotId: data.snapshotId, path: data.path, targetAgentId: data.targetAgentId, targetPath: data.targetPath, ...authOf(principal) }, requestId,
      });
      return (await this.load(tx, principal.orgId, [id!]))[0]!;
    });
  }

  async startCheck(principal: Principal, input: StartCheckInput, requestId: string): Promise<Job> {
    this.access.require(principal, 'create', 'Job', undefined, requestId);
    const data = parseInput(checkSchema, stripNulls(input));
    return this.announcer.run(principal.orgId, async (tx) => {
      const store = await this.requireStore(tx, principal, data.storeId, 'read', requestId);
      this.access.require(principal, 'create', 'Job', [store], requestId);
      if (store.status !== 'ready') throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, `the store is ${store.status}: it can be checked once its init job succeeded`);
      const agentId = data.agentId ?? (await this.initAgentOf(tx, principal.orgId, store.id));
      if (agentId == null) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'name the agent that runs the check (agentId)', { fields: [{ path: 'agentId', message: 'required for this store' }] });
      await this.requireAgent(tx, principal.orgId, agentId, 'agentId');
      const spec = { readData: data.readData, ...(data.subsetPercent == null ? {} : { subsetPercent: data.subsetPercent }) };
      const id = await this.writer.enqueue(tx, principal.orgId, { kind: 'check', agentId, storeId: store.id, spec, requestedBy: principal.actor }, `check requested by ${principal.actor}`);
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'job.check_started', target: `job:${id}`, payload: { storeId: store.id, agentId, ...spec, ...authOf(principal) }, requestId,
      });
      return (await this.load(tx, principal.orgId, [id!]))[0]!;
    });
  }

  /** A queued job is cancelled at once; a leased or running one is asked to stop (docs/fleet.md §4). */
  async cancel(principal: Principal, id: string, requestId: string): Promise<Job> {
    this.access.require(principal, 'update', 'Job', undefined, requestId);
    parseInput(uuid, id);
    let cancelledQueued: { agentId: string } | null = null;
    const result = await this.announcer.run(principal.orgId, async (tx) => {
      const [job] = await tx.select().from(jobs).where(and(eq(jobs.orgId, principal.orgId), eq(jobs.id, id))).for('update');
      if (job == null) throw notFound('the job');
      this.access.require(principal, 'update', 'Job', withLabels([job], await jobLabels(tx, principal.orgId, [job])), requestId);
      if (!['queued', 'leased', 'running'].includes(job.status)) return toJob(job);
      const now = new Date();
      const change = job.status === 'queued' ? { status: 'cancelled' as const, finishedAt: now, cancelRequested: true, updatedAt: now } : { cancelRequested: true, updatedAt: now };
      if (job.status === 'queued') cancelledQueued = { agentId: job.agentId };
      const [row] = await tx.update(jobs).set(change).where(and(eq(jobs.orgId, principal.orgId), eq(jobs.id, id))).returning();
      await tx.insert(jobEvents).values({
        orgId: principal.orgId, jobId: id,
        seq: sql`(SELECT coalesce(max(${jobEvents.seq}), 0) + 1 FROM ${jobEvents} WHERE ${jobEvents.orgId} = ${principal.orgId} AND ${jobEvents.jobId} = ${id})`,
        kind: job.status === 'queued' ? 'completed' : 'cancel-requested', level: 'info', message: `cancelled by ${principal.actor}`, data: {},
      });
      await this.audit.append(tx, principal.orgId, { actor: principal.actor, action: 'job.cancelled', target: `job:${id}`, payload: { kind: job.kind, status: job.status, ...authOf(principal) }, requestId });
      return toJob(row!);
    });
    // a queued job ends here: follow-ups (a cancelled init fails its store) and subscribers learn it
    const ended = cancelledQueued as { agentId: string } | null;
    if (ended != null) this.events.emitCompleted({ orgId: principal.orgId, jobId: id, agentId: ended.agentId, status: 'cancelled' });
    return result;
  }

  private async requireStore(tx: TenantTx, principal: Principal, id: string, action: 'read', requestId: string) {
    const [store] = await tx.select().from(stores).where(and(eq(stores.orgId, principal.orgId), eq(stores.id, id)));
    if (store == null) throw notFound('the store');
    this.access.require(principal, action, 'Store', [store], requestId);
    return store;
  }

  private async requireAgent(tx: TenantTx, orgId: string, id: string, path: string): Promise<void> {
    const [agent] = await tx.select({ status: agents.status }).from(agents).where(and(eq(agents.orgId, orgId), eq(agents.id, id)));
    if (agent == null || agent.status !== 'active') {
      const message = agent == null ? 'no such agent in your organization' : `the agent is ${agent.status}: choose an active agent`;
      throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: ${path}: ${message}`, { fields: [{ path, message }] });
    }
  }

  private async initAgentOf(tx: TenantTx, orgId: string, storeRowId: string): Promise<string | null> {
    const [job] = await tx.select({ agentId: jobs.agentId }).from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.storeId, storeRowId), eq(jobs.kind, 'init'), eq(jobs.status, 'succeeded'))).limit(1);
    return job?.agentId ?? null;
  }

  private async load(tx: TenantTx, orgId: string, ids: string[]): Promise<Job[]> {
    if (ids.length === 0) return [];
    const rows = await tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), inArray(jobs.id, ids)));
    return rows.map(toJob);
  }
}

function stripNulls<T extends object>(input: T): T {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v != null)) as T;
}
