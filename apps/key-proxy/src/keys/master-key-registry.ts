import type { DatabaseSync } from 'node:sqlite';

/**
 * Which stores this proxy created a master key for (store, org, KEK reference, when, for which
 * agent and job). A store gets one master key for life: a second `init` for the same store ID is
 * refused (409), so an agent or a compromised control plane cannot make the proxy mint a second MK
 * for a store and confuse which envelope is the real one. No key material is recorded.
 */
export interface MasterKeyRecord {
  store: string;
  org: string;
  provider: string;
  kek: string;
  envelopeSha256: string;
  agent: string | undefined;
  job: string | undefined;
  createdAt: string;
}

export class MasterKeyRegistry {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  exists(store: string): boolean {
    return this.db.prepare('SELECT 1 FROM master_keys WHERE store = ?').get(store) !== undefined;
  }

  /** Records a new master key; returns false when the store already has one (nothing is written). */
  record(entry: Omit<MasterKeyRecord, 'createdAt'>): boolean {
    const result = this.db
      .prepare(
        `INSERT INTO master_keys (store, org, provider, kek, envelope_sha256, agent, job, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store) DO NOTHING`,
      )
      .run(entry.store, entry.org, entry.provider, entry.kek, entry.envelopeSha256, entry.agent ?? null, entry.job ?? null, new Date().toISOString());
    return Number(result.changes) === 1;
  }

  list(): MasterKeyRecord[] {
    const rows = this.db.prepare('SELECT * FROM master_keys ORDER BY created_at').all() as Array<Record<string, string | null>>;
    return rows.map((r) => ({
      store: r.store!, org: r.org!, provider: r.provider!, kek: r.kek!, envelopeSha256: r.envelope_sha256!,
      agent: r.agent ?? undefined, job: r.job ?? undefined, createdAt: r.created_at!,
    }));
  }
}
