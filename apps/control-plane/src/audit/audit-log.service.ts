import { Inject, Injectable } from '@nestjs/common';
import { and, asc, eq, gt, lte } from 'drizzle-orm';
import { auditChainHeads, auditEvents, type AuditEventRow, type Database, type TenantTx } from '@arca/db';
import { DATABASE } from '../database/database.tokens.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { auditEntryHash, GENESIS_HASH } from './audit-hash.ts';

export interface AuditEntryInput {
  actor: string;
  action: string;
  /** "<type>:<id>", or '' */
  target?: string;
  payload?: Record<string, unknown>;
  requestId?: string | null;
  /** idempotency key of an ingested event; an entry with the same source is not appended twice */
  source?: string | null;
  /** defaults to now; ingested events keep the time they happened */
  time?: Date;
}

export const AuditProblem = {
  /** an entry's content or position no longer matches its hash */
  EntryModified: 'ENTRY_MODIFIED',
  /** an entry's prev_hash is not its predecessor's hash (reordered, or a predecessor replaced) */
  ChainBroken: 'CHAIN_BROKEN',
  /** a sequence number is missing (entries deleted) */
  EntriesMissing: 'ENTRIES_MISSING',
  /** the last entry is not the recorded head (tail truncated or head rewritten) */
  HeadMismatch: 'HEAD_MISMATCH',
} as const;
export type AuditProblem = (typeof AuditProblem)[keyof typeof AuditProblem];

export interface AuditVerification {
  valid: boolean;
  checkedEvents: number;
  headSeq: number;
  headHash: string;
  /** first entry found wrong, when invalid */
  firstInvalidSeq: number | null;
  problem: AuditProblem | null;
  message: string;
}

const VERIFY_PAGE = 2000;

/**
 * The per-organization, hash-chained audit log. Appends run inside the caller's tenant
 * transaction, so an entry is committed exactly when the change it describes is; the chain head
 * row is locked FOR UPDATE, which serializes appenders of one organization (and only of that one)
 * across every replica.
 */
@Injectable()
export class AuditLogService {
  private readonly db: Database;
  private readonly metrics: MetricsService;

  constructor(@Inject(DATABASE) db: Database, metrics: MetricsService) {
    this.db = db;
    this.metrics = metrics;
  }

  /** Creates the chain's head; called in the transaction that creates the organization. */
  async initChain(tx: TenantTx, orgId: string): Promise<void> {
    await tx.insert(auditChainHeads).values({ orgId, seq: 0, hash: GENESIS_HASH }).onConflictDoNothing();
  }

  /** Appends one entry in `tx` (a withTenant transaction for `orgId`). Returns null for a duplicate source. */
  async append(tx: TenantTx, orgId: string, input: AuditEntryInput): Promise<AuditEventRow | null> {
    let [head] = await tx.select().from(auditChainHeads).where(eq(auditChainHeads.orgId, orgId)).for('update');
    if (head == null) {
      await this.initChain(tx, orgId);
      [head] = await tx.select().from(auditChainHeads).where(eq(auditChainHeads.orgId, orgId)).for('update');
    }
    if (head == null) throw new Error('audit chain head missing after initialization');
    if (input.source != null) {
      const [dup] = await tx.select({ seq: auditEvents.seq }).from(auditEvents)
        .where(and(eq(auditEvents.orgId, orgId), eq(auditEvents.source, input.source)));
      if (dup != null) return null;
    }
    const entry = {
      orgId,
      seq: head.seq + 1,
      time: new Date((input.time ?? new Date()).getTime()),
      actor: input.actor,
      action: input.action,
      target: input.target ?? '',
      payload: input.payload ?? {},
      requestId: input.requestId ?? null,
      source: input.source ?? null,
    };
    const hash = auditEntryHash(head.hash, entry);
    const row = { ...entry, prevHash: head.hash, hash };
    await tx.insert(auditEvents).values(row);
    await tx.update(auditChainHeads).set({ seq: entry.seq, hash }).where(eq(auditChainHeads.orgId, orgId));
    this.metrics.auditAppends.inc({ action: input.action });
    return row;
  }

  /** Appends in its own transaction (auth failures and denials, which have no other change). */
  async appendStandalone(orgId: string, input: AuditEntryInput): Promise<void> {
    await this.db.withTenant(orgId, (tx) => this.append(tx, orgId, input));
  }

  /**
   * Recomputes the whole chain up to the current head: every hash, every link and every sequence
   * number, then the head itself. Reports the first problem found.
   */
  async verify(orgId: string): Promise<AuditVerification> {
    return this.db.readTenant(orgId, async (tx) => {
      const [head] = await tx.select().from(auditChainHeads).where(eq(auditChainHeads.orgId, orgId));
      const headSeq = head?.seq ?? 0;
      const headHash = head?.hash ?? GENESIS_HASH;
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      let checked = 0;
      const fail = (seq: number, problem: AuditProblem, message: string): AuditVerification =>
        ({ valid: false, checkedEvents: checked, headSeq, headHash, firstInvalidSeq: seq, problem, message });
      for (;;) {
        const page = await tx.select().from(auditEvents)
          .where(and(eq(auditEvents.orgId, orgId), gt(auditEvents.seq, expectedSeq - 1), lte(auditEvents.seq, headSeq)))
          .orderBy(asc(auditEvents.seq)).limit(VERIFY_PAGE);
        for (const row of page) {
          if (row.seq !== expectedSeq) return fail(expectedSeq, AuditProblem.EntriesMissing, `entries ${expectedSeq}..${row.seq - 1} are missing`);
          if (auditEntryHash(row.prevHash, row) !== row.hash) return fail(row.seq, AuditProblem.EntryModified, `entry ${row.seq} does not match its hash: it was modified or moved`);
          if (row.prevHash !== prevHash) return fail(row.seq, AuditProblem.ChainBroken, `entry ${row.seq} does not follow entry ${row.seq - 1}: entries were reordered or replaced`);
          prevHash = row.hash;
          expectedSeq++;
          checked++;
        }
        if (page.length < VERIFY_PAGE) break;
      }
      if (expectedSeq - 1 !== headSeq || prevHash !== headHash) {
        return fail(expectedSeq, AuditProblem.HeadMismatch, `the log ends at entry ${expectedSeq - 1} but its head records entry ${headSeq}: entries were removed from the end or the head was rewritten`);
      }
      return { valid: true, checkedEvents: checked, headSeq, headHash, firstInvalidSeq: null, problem: null, message: `all ${checked} entries verified` };
    });
  }
}
