import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { JOB_OPERATIONS, type JobOperation } from '@arca/crypto';

/**
 * Strict-mode grants (docs/key-proxy.md §5): a key custodian approves one agent key (by its
 * RFC 7638 thumbprint) for one store of one organization, for some operations. The proxy issues
 * keys only within token ops ∩ grant ops, so a compromised control plane, which can mint tokens for
 * any agent key of its choosing, still cannot obtain keys with a key no custodian approved.
 * Lookups go to SQLite on every request: a revocation takes effect on the next request.
 */
export interface Grant {
  org: string;
  store: string;
  agentKeyThumbprint: string;
  ops: JobOperation[];
  note: string | undefined;
  createdAt: string;
  updatedAt: string;
}

interface GrantRow {
  org: string;
  store: string;
  jkt: string;
  ops: string;
  note: string | null;
  created_at: string;
  updated_at: string;
}

export const STORE_ID_PATTERN = /^[0-9a-f]{64}$/;
export const THUMBPRINT_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export class GrantStore {
  private readonly db: DatabaseSync;
  private readonly findStatement: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.findStatement = db.prepare('SELECT * FROM grants WHERE org = ? AND store = ? AND jkt = ?');
  }

  find(org: string, store: string, agentKeyThumbprint: string): Grant | undefined {
    const row = this.findStatement.get(org, store, agentKeyThumbprint) as GrantRow | undefined;
    return row ? toGrant(row) : undefined;
  }

  /** Creates or replaces the grant; returns whether it existed before. */
  approve(input: { org: string; store: string; agentKeyThumbprint: string; ops: readonly JobOperation[]; note?: string }): { grant: Grant; replaced: boolean } {
    const now = new Date().toISOString();
    const ops = JOB_OPERATIONS.filter((op) => input.ops.includes(op)).join(',');
    const existing = this.find(input.org, input.store, input.agentKeyThumbprint);
    this.db
      .prepare(
        `INSERT INTO grants (org, store, jkt, ops, note, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (org, store, jkt) DO UPDATE SET ops = excluded.ops, note = excluded.note, updated_at = excluded.updated_at`,
      )
      .run(input.org, input.store, input.agentKeyThumbprint, ops, input.note ?? null, now, now);
    return { grant: this.find(input.org, input.store, input.agentKeyThumbprint)!, replaced: existing !== undefined };
  }

  /** Returns the removed grant, or undefined when there was none. */
  revoke(org: string, store: string, agentKeyThumbprint: string): Grant | undefined {
    const existing = this.find(org, store, agentKeyThumbprint);
    if (existing) this.db.prepare('DELETE FROM grants WHERE org = ? AND store = ? AND jkt = ?').run(org, store, agentKeyThumbprint);
    return existing;
  }

  list(filter: { org?: string; store?: string; agentKeyThumbprint?: string } = {}): Grant[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM grants WHERE (?1 IS NULL OR org = ?1) AND (?2 IS NULL OR store = ?2) AND (?3 IS NULL OR jkt = ?3)
         ORDER BY org, store, created_at`,
      )
      .all(filter.org ?? null, filter.store ?? null, filter.agentKeyThumbprint ?? null) as unknown as GrantRow[];
    return rows.map(toGrant);
  }
}

function toGrant(row: GrantRow): Grant {
  return {
    org: row.org,
    store: row.store,
    agentKeyThumbprint: row.jkt,
    ops: row.ops.split(',').filter((op): op is JobOperation => (JOB_OPERATIONS as readonly string[]).includes(op)),
    note: row.note ?? undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
