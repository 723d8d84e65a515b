import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { AgentHeartbeatRequest } from '@arca/contracts';
import type { Database } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { AGENT_API_LOGGER } from './agent-authenticator.service.ts';

interface Pending {
  beat: AgentHeartbeatRequest;
  seenAt: string;
}

/**
 * Agent heartbeats are written in batches (every ARCA_CP_HEARTBEAT_FLUSH_MS): the newest beat of
 * each agent, one UPDATE per organization per flush. A fleet of thousands beating every few seconds
 * would otherwise be thousands of write transactions a second for facts ("seen at", load, free
 * space) that matter to the second, not to the millisecond. What a crash loses is at most one
 * flush interval of "last seen" — the next beat repairs it.
 */
@Injectable()
export class HeartbeatWriter implements OnApplicationShutdown {
  private readonly db: Database;
  private readonly logger: Logger;
  private readonly flushMs: number;
  private readonly metrics: MetricsService;
  private pending = new Map<string, Map<string, Pending>>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(@Inject(DATABASE) db: Database, @Inject(CONFIG) config: ControlPlaneConfig, @Inject(AGENT_API_LOGGER) logger: Logger, metrics: MetricsService) {
    this.db = db;
    this.metrics = metrics;
    this.logger = logger;
    this.flushMs = config.fleet.heartbeatFlushMs;
  }

  record(orgId: string, agentId: string, beat: AgentHeartbeatRequest, now = new Date()): void {
    let org = this.pending.get(orgId);
    if (org == null) this.pending.set(orgId, (org = new Map()));
    org.set(agentId, { beat, seenAt: now.toISOString() });
    if (this.timer == null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes what is pending (tests call it to see a beat at once). */
  async flush(): Promise<void> {
    while (this.flushing != null) await this.flushing;
    const batch = this.pending;
    if (batch.size === 0) return;
    this.pending = new Map();
    this.flushing = this.write(batch).finally(() => {
      this.flushing = null;
    });
    await this.flushing;
  }

  private async write(batch: Map<string, Map<string, Pending>>): Promise<void> {
    for (const [orgId, beats] of batch) {
      const rows = [...beats].map(([id, { beat, seenAt }]) => ({
        id, hostname: beat.hostname, os: beat.os, arch: beat.arch, version: beat.version, uptime: Math.floor(beat.uptimeSeconds),
        load: beat.load, free: beat.freeBytes, seen: seenAt,
      }));
      try {
        await this.db.withTenant(orgId, (tx) => tx.execute(sql`
          UPDATE agents AS a SET hostname = v.hostname, os = v.os, arch = v.arch, version = v.version, uptime_seconds = v.uptime,
            load = v.load, free_bytes = v.free, last_seen_at = greatest(a.last_seen_at, v.seen)
          FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
            AS v(id uuid, hostname text, os text, arch text, version text, uptime bigint, load jsonb, free bigint, seen timestamptz)
          WHERE a.org_id = ${orgId} AND a.id = v.id`));
        this.metrics.agentHeartbeatWrites.inc({ outcome: 'written' }, rows.length);
      } catch (err) {
        this.metrics.agentHeartbeatWrites.inc({ outcome: 'failed' }, rows.length);
        // the next beats repair it; never let a database hiccup fail heartbeats
        this.logger.warn({ msg: 'agent heartbeats could not be written', orgId, agents: rows.length, err });
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer != null) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}
