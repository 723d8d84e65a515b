import { createHash } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { inTransaction, proxyInstanceId } from '../state/state-database.ts';
import type { AuditEvent, StoredAuditEvent } from './audit-event.ts';

/**
 * The proxy's local audit log in SQLite: append-only and hash-chained (each row's hash covers the
 * previous row's hash and the row's event JSON), so a deleted, altered or reordered row breaks
 * `arca-key-proxy audit verify`. Also the outbox of the sinks: each sink keeps a cursor (the last
 * row it delivered), so an undelivered event survives a restart or an outage of the sink.
 */
export const GENESIS_HASH = '0'.repeat(64);

interface Row {
  seq: number;
  event: string;
  prev_hash: string;
  hash: string;
}

export function chainHash(prevHash: string, eventJson: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(eventJson).digest('hex');
}

export class AuditStore {
  readonly proxyId: string;
  private readonly db: DatabaseSync;
  private readonly lastStatement: StatementSync;
  private readonly insertStatement: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.proxyId = proxyInstanceId(db);
    this.lastStatement = db.prepare('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    this.insertStatement = db.prepare('INSERT INTO audit_events (seq, event, prev_hash, hash) VALUES (?, ?, ?, ?)');
  }

  /** Appends events in one transaction (atomic with other writers, e.g. the CLI). */
  append(events: readonly AuditEvent[]): void {
    if (events.length === 0) return;
    inTransaction(this.db, () => {
      const last = this.lastStatement.get() as { seq: number; hash: string } | undefined;
      let seq = last?.seq ?? 0;
      let prev = last?.hash ?? GENESIS_HASH;
      for (const event of events) {
        const json = JSON.stringify(event);
        const hash = chainHash(prev, json);
        seq += 1;
        this.insertStatement.run(seq, json, prev, hash);
        prev = hash;
      }
    });
  }

  lastSeq(): number {
    return (this.lastStatement.get() as { seq: number } | undefined)?.seq ?? 0;
  }

  /** Events after `seq`, oldest first. */
  readAfter(seq: number, limit: number): StoredAuditEvent[] {
    const rows = this.db.prepare('SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit) as unknown as Row[];
    return rows.map((r) => this.toStored(r));
  }

  /** The last `count` events, oldest first. */
  tail(count: number): StoredAuditEvent[] {
    const rows = this.db.prepare('SELECT * FROM audit_events ORDER BY seq DESC LIMIT ?').all(count) as unknown as Row[];
    return rows.reverse().map((r) => this.toStored(r));
  }

  cursor(sink: string): number | undefined {
    return (this.db.prepare('SELECT seq FROM audit_cursors WHERE sink = ?').get(sink) as { seq: number } | undefined)?.seq;
  }

  setCursor(sink: string, seq: number): void {
    this.db.prepare('INSERT INTO audit_cursors (sink, seq) VALUES (?, ?) ON CONFLICT (sink) DO UPDATE SET seq = MAX(seq, excluded.seq)').run(sink, seq);
  }

  /** Recomputes the chain; reports the first broken row. */
  verify(): { events: number; ok: boolean; brokenAt?: number; lastHash: string } {
    let prev = GENESIS_HASH;
    let expectedSeq = 1;
    let events = 0;
    for (const row of this.db.prepare('SELECT * FROM audit_events ORDER BY seq').iterate() as Iterable<Row>) {
      if (row.seq !== expectedSeq || row.prev_hash !== prev || chainHash(prev, row.event) !== row.hash) {
        return { events, ok: false, brokenAt: row.seq, lastHash: prev };
      }
      prev = row.hash;
      expectedSeq += 1;
      events += 1;
    }
    return { events, ok: true, lastHash: prev };
  }

  private toStored(row: Row): StoredAuditEvent {
    return { proxy: this.proxyId, seq: row.seq, hash: row.hash, ...(JSON.parse(row.event) as AuditEvent) };
  }
}
