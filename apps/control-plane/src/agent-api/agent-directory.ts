import { Inject, Injectable } from '@nestjs/common';
import { and, eq } from 'drizzle-orm';
import { agents, type AgentStatus, type Database } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';

/** What authenticating an agent needs of its row. */
export interface AgentIdentityRow {
  orgId: string;
  agentId: string;
  keyThumbprint: string;
  status: AgentStatus;
}

const MAX_ENTRIES = 50_000;

/**
 * Agents' key thumbprints and statuses, cached for ARCA_CP_AUTH_CACHE_MS (as API tokens are), so
 * a fleet's heartbeats cost a signature check and no database read. Changes made through this
 * replica (disable, remove, re-key) forget the entry at once; other replicas see them within the
 * cache lifetime — the same bound as for revoked API tokens.
 */
@Injectable()
export class AgentDirectory {
  private readonly db: Database;
  private readonly ttlMs: number;
  private readonly entries = new Map<string, { row: AgentIdentityRow | null; expiresAt: number }>();

  constructor(@Inject(DATABASE) db: Database, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.ttlMs = config.authCacheMs;
  }

  async find(orgId: string, agentId: string, now = Date.now()): Promise<AgentIdentityRow | null> {
    const key = `${orgId}:${agentId}`;
    const cached = this.entries.get(key);
    if (cached != null && cached.expiresAt > now) return cached.row;
    const [found] = await this.db.readTenant(orgId, (tx) => tx.select({ keyThumbprint: agents.keyThumbprint, status: agents.status }).from(agents)
      .where(and(eq(agents.orgId, orgId), eq(agents.id, agentId))));
    const row = found == null ? null : { orgId, agentId, keyThumbprint: found.keyThumbprint, status: found.status };
    if (this.ttlMs > 0) {
      if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
      this.entries.set(key, { row, expiresAt: now + this.ttlMs });
    }
    return row;
  }

  forget(orgId: string, agentId: string): void {
    this.entries.delete(`${orgId}:${agentId}`);
  }
}
