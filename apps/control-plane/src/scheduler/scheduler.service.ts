import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { and, eq, inArray, lte, ne } from 'drizzle-orm';
import type { Logger } from 'pino';
import { agents, jobs, policies, type Database, type JobStatus, type TenantTx } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { effectivePolicy } from '../policies/effective-policy.ts';
import { candidate, PolicyService } from '../policies/policy.service.ts';
import { ResourceService } from '../resources/resource.service.ts';
import { CLOCK, type Clock } from './clock.ts';
import { JobAnnouncer } from './job-announcer.ts';
import { SchedulerJobs } from './scheduler-jobs.ts';
import { planSlot } from './slot-planning.ts';

export const SCHEDULER_LOGGER = Symbol('arca:scheduler-logger');

/** job statuses that still hold a resource: a new backup of it would overlap */
const ACTIVE: JobStatus[] = ['queued', 'leased', 'running'];

/** policies handled per tick at most; the rest wait for the next tick */
const DUE_BATCH = 500;

export interface TickResult {
  policies: number;
  jobsCreated: number;
  skipped: number;
}

/**
 * The scheduler (docs/fleet.md §5), on every replica: each tick asks `arca_due_policies` (a narrow
 * SECURITY DEFINER function: IDs only, across tenants) which policies are due, then handles each
 * in its tenant, holding the policy row FOR UPDATE SKIP LOCKED so that a replica finding it
 * locked moves on. Whoever holds the lock re-checks that the policy is still due, creates one
 * backup job per resource whose effective policy it is (ON CONFLICT DO NOTHING on the slot's
 * unique key as a second line), and moves `next_run_at` past now in the same transaction.
 */
@Injectable()
export class SchedulerService implements OnApplicationShutdown {
  private readonly db: Database;
  private readonly clock: Clock;
  private readonly resources: ResourceService;
  private readonly policies: PolicyService;
  private readonly writer: SchedulerJobs;
  private readonly announcer: JobAnnouncer;
  private readonly tickMs: number;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;

  constructor(
    @Inject(DATABASE) db: Database, @Inject(CLOCK) clock: Clock, resources: ResourceService, policiesService: PolicyService, writer: SchedulerJobs, announcer: JobAnnouncer,
    @Inject(CONFIG) config: ControlPlaneConfig, @Inject(SCHEDULER_LOGGER) logger: Logger,
  ) {
    this.db = db;
    this.clock = clock;
    this.resources = resources;
    this.policies = policiesService;
    this.writer = writer;
    this.announcer = announcer;
    this.tickMs = config.scheduler.tickMs;
    this.logger = logger;
  }

  /** Starts ticking (after the server listens). */
  start(): void {
    if (this.timer != null || this.stopped) return;
    const loop = (): void => {
      this.running = this.tick().catch((err: unknown) => this.logger.error({ err }, 'scheduler tick failed; retrying at the next tick'))
        .finally(() => {
          this.running = null;
          if (!this.stopped) this.timer = setTimeout(loop, this.tickMs);
        });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer != null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  /** One pass over every due policy (tests call it directly with a moved clock). */
  async tick(): Promise<TickResult> {
    const now = this.clock.now();
    // due by the database's clock; the in-tenant re-check below uses this replica's (injectable) clock
    const due = await this.db.duePolicies(DUE_BATCH);
    const result: TickResult = { policies: 0, jobsCreated: 0, skipped: 0 };
    for (const { orgId, policyId } of due) {
      try {
        const outcome = await this.announcer.run(orgId, (tx) => this.runPolicy(tx, orgId, policyId, now));
        if (outcome == null) continue;
        result.policies++;
        result.jobsCreated += outcome.created;
        result.skipped += outcome.skipped;
      } catch (err) {
        // one tenant's failure must not starve the others
        this.logger.error({ err, orgId, policyId }, 'scheduling a policy failed');
      }
    }
    return result;
  }

  private async runPolicy(tx: TenantTx, orgId: string, policyId: string, now: Date): Promise<{ created: number; skipped: number } | null> {
    const [policy] = await tx.select().from(policies)
      .where(and(eq(policies.orgId, orgId), eq(policies.id, policyId), eq(policies.enabled, true), lte(policies.nextRunAt, now)))
      .for('update', { skipLocked: true });
    // locked by another replica, or already moved on by one, or disabled meanwhile
    if (policy?.nextRunAt == null) return null;
    const candidates = (await this.policies.enabledPolicies(tx, orgId)).map(candidate);
    // agents that are disabled or removed get no new backups (their resources stay, for when they return)
    const inactive = new Set((await tx.select({ id: agents.id }).from(agents).where(and(eq(agents.orgId, orgId), ne(agents.status, 'active')))).map((a) => a.id));
    const mine = (await this.resources.withLabels(tx, orgId)).filter((r) => !inactive.has(r.row.agentId) && effectivePolicy(candidates, r.labels)?.id === policy.id);
    const active = mine.length === 0 ? [] : await tx.select({ id: jobs.id, resourceId: jobs.resourceId }).from(jobs)
      .where(and(eq(jobs.orgId, orgId), eq(jobs.kind, 'backup'), inArray(jobs.status, ACTIVE), inArray(jobs.resourceId, mine.map((r) => r.row.id))));
    const activeByResource = new Map(active.map((j) => [j.resourceId!, j.id]));
    const plan = planSlot({ id: policy.id, schedule: policy.schedule, timezone: policy.timezone, nextRunAt: policy.nextRunAt }, now, mine.map((r) => r.row.id), activeByResource);
    let created = 0;
    for (const item of mine.filter((r) => plan.enqueue.includes(r.row.id))) {
      if (await this.writer.enqueueBackup(tx, orgId, policy, item.row, plan.scheduledFor, plan.coalescedSlots)) created++;
    }
    for (const skip of plan.skip) await this.writer.recordSkip(tx, orgId, skip.activeJobId, policy.id, skip.resourceId, plan.scheduledFor);
    await tx.update(policies).set({ nextRunAt: plan.nextRunAt }).where(and(eq(policies.orgId, orgId), eq(policies.id, policy.id)));
    return { created, skipped: plan.skip.length };
  }
}
