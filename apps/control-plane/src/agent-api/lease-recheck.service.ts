import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { and, eq, lte, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { jobs, type Database } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { JobWakeups } from '../jobs/job-wakeups.ts';
import { AGENT_API_LOGGER } from './agent-authenticator.service.ts';

/**
 * The safety net under LISTEN/NOTIFY (docs/fleet.md §4): every ARCA_CP_LEASE_RECHECK_SECONDS, one
 * read per organization with waiting long polls on this replica finds which of those agents have
 * a ready job, and wakes them. It catches a lost notification and a retry whose backoff has just
 * run out (no notification is sent then) — at one query per organization, not one per poller.
 */
@Injectable()
export class LeaseRecheck implements OnApplicationShutdown {
  private readonly db: Database;
  private readonly wakeups: JobWakeups;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(@Inject(DATABASE) db: Database, wakeups: JobWakeups, @Inject(CONFIG) config: ControlPlaneConfig, @Inject(AGENT_API_LOGGER) logger: Logger) {
    this.db = db;
    this.wakeups = wakeups;
    this.logger = logger;
    this.intervalMs = config.fleet.leaseRecheckMs;
  }

  start(): void {
    if (this.timer != null) return;
    this.timer = setInterval(() => {
      this.running ??= this.recheckOnce().finally(() => {
        this.running = null;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  async recheckOnce(): Promise<void> {
    for (const [orgId, waiting] of this.wakeups.waitingAgents()) {
      try {
        // the organization's agents with a ready job (few: a job waits for its agent only while it is away),
        // not "which of these thousands of waiting agents" — that query would grow with the fleet
        const ready = await this.db.readTenant(orgId, (tx) => tx.selectDistinct({ agentId: jobs.agentId }).from(jobs)
          .where(and(eq(jobs.orgId, orgId), eq(jobs.status, 'queued'), lte(jobs.runAfter, sql`now()`))).limit(10_000));
        for (const { agentId } of ready) if (waiting.has(agentId)) this.wakeups.wake(orgId, agentId);
      } catch (err) {
        this.logger.warn({ msg: 'lease re-check failed', orgId, err });
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer != null) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
