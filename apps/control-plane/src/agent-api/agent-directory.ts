import { Inject, Injectable } from '@nestjs/common';
import { and, eq, gte, sql } from 'drizzle-orm';
import { agents, resultRows, type AgentStatus, type Database } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';

/** What authenticating an agent needs of its row. */
export interface AgentIdentityRow {
  orgId: string;
  agentId: string;
  keyThumbprint: string;
  status: AgentStatus;
}

const MAX_ENTRIES = 100_000;
/** how far back each refresh looks: transactions that commit late, the clocks of other replicas */
const REFRESH_OVERLAP_MS = 60_000;

interface OrgEntries {
  /** null: no such agent (looked up again after the next refresh) */
  agents: Map<string, AgentIdentityRow | null>;
  /** when this replica last brought the organization's entries up to date (its own clock) */
  checkedAt: number;
  /** the database time the next refresh reads changes from */
  since: Date;
  refreshing: Promise<void> | null;
}

/**
 * Agents' key thumbprints and statuses, cached so a fleet's heartbeats cost a signature check and
 * no database read. Entries are at most ARCA_CP_AUTH_CACHE_MS old, as for API tokens: once that
 * has passed, the next call of the organization refreshes it with ONE read of the agents changed
 * since the last refresh (`updated_at`, which configuration changes touch and heartbeats do not),
 * shared by every concurrent call. A per-agent expiry would cost one read per agent and interval —
 * hundreds a second for a large fleet, queued behind the job traffic on the same pool. Changes made
 * through this replica (disable, remove, re-key) forget the entry at once; other replicas see them
 * within the cache lifetime.
 */
@Injectable()
export class AgentDirectory {
  private readonly db: Database;
  private readonly ttlMs: number;
  private readonly orgs = new Map<string, OrgEntries>();
  private size = 0;

  constructor(@Inject(DATABASE) db: Database, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.ttlMs = config.authCacheMs;
  }

  async find(orgId: string, agentId: string, now = Date.now()): Promise<AgentIdentityRow | null> {
    if (this.ttlMs === 0) return this.lookup(orgId, agentId);
    let org = this.orgs.get(orgId);
    if (org == null) {
      org = { agents: new Map(), checkedAt: now, since: new Date(now - REFRESH_OVERLAP_MS), refreshing: null };
      this.orgs.set(orgId, org);
    }
    if (now - org.checkedAt >= this.ttlMs) await this.refresh(orgId, org);
    const cached = org.agents.get(agentId);
    if (cached !== undefined) return cached;
    const row = await this.lookup(orgId, agentId);
    if (this.size >= MAX_ENTRIES) this.clear();
    const current = this.orgs.get(orgId);
    if (current != null && !current.agents.has(agentId)) {
      current.agents.set(agentId, row);
      this.size++;
    }
    return row;
  }

  forget(orgId: string, agentId: string): void {
    if (this.orgs.get(orgId)?.agents.delete(agentId) === true) this.size--;
  }

  private refresh(orgId: string, org: OrgEntries): Promise<void> {
    org.refreshing ??= (async () => {
      try {
        const { rows, dbNow } = await this.db.readTenant(orgId, async (tx) => {
          const changed = await tx.select({ id: agents.id, keyThumbprint: agents.keyThumbprint, status: agents.status }).from(agents)
            .where(and(eq(agents.orgId, orgId), gte(agents.updatedAt, org.since)));
          const [clock] = resultRows<{ now: string | Date }>(await tx.execute(sql`SELECT now() AS now`));
          return { rows: changed, dbNow: new Date(clock!.now) };
        });
        // agents this replica has not seen yet are looked up when they first call
        for (const r of rows) if (org.agents.has(r.id)) org.agents.set(r.id, { orgId, agentId: r.id, keyThumbprint: r.keyThumbprint, status: r.status });
        for (const [id, row] of org.agents) {
          if (row == null) {
            org.agents.delete(id);
            this.size--;
          }
        }
        org.since = new Date(dbNow.getTime() - REFRESH_OVERLAP_MS);
        org.checkedAt = Date.now();
      } finally {
        org.refreshing = null;
      }
    })();
    return org.refreshing;
  }

  private async lookup(orgId: string, agentId: string): Promise<AgentIdentityRow | null> {
    const [found] = await this.db.readTenant(orgId, (tx) => tx.select({ keyThumbprint: agents.keyThumbprint, status: agents.status }).from(agents)
      .where(and(eq(agents.orgId, orgId), eq(agents.id, agentId))));
    return found == null ? null : { orgId, agentId, keyThumbprint: found.keyThumbprint, status: found.status };
  }

  private clear(): void {
    this.orgs.clear();
    this.size = 0;
  }
}
