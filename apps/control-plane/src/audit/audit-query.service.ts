import { Inject, Injectable } from '@nestjs/common';
import { and, asc, desc, eq, gte, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { auditEvents, type AuditEventRow, type Database } from '@arca/db';
import type { Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { parseInput } from '../errors/input-validation.ts';
import { decodeCursor, encodeCursor, pageSize, toConnection } from '../graphql/relay-pagination.ts';
import type { AuditEvent, AuditEventConnection, AuditEventFilter, AuditEventOrder } from './audit.types.ts';

const filterSchema = z.object({
  actions: z.array(z.string().min(1).max(100)).max(50).nullish(),
  actor: z.string().min(1).max(300).nullish(),
  target: z.string().min(1).max(300).nullish(),
  from: z.date().nullish(),
  to: z.date().nullish(),
});
const seqCursor = z.tuple([z.number().int().positive()]);
const timeCursor = z.tuple([z.iso.datetime(), z.number().int().positive()]);

/** Lists audit events with keyset pagination: (seq) or (time, seq), ascending or descending. */
@Injectable()
export class AuditQueryService {
  private readonly db: Database;

  constructor(@Inject(DATABASE) db: Database) {
    this.db = db;
  }

  async list(principal: Principal, args: { first?: number; after?: string; filter?: AuditEventFilter; orderBy?: AuditEventOrder }): Promise<AuditEventConnection> {
    const limit = pageSize(args.first);
    const filter = parseInput(filterSchema, args.filter ?? {});
    const field = args.orderBy?.field ?? 'seq';
    const direction = args.orderBy?.direction ?? 'desc';
    const conditions: Array<SQL | undefined> = [
      eq(auditEvents.orgId, principal.orgId),
      filter.actions == null ? undefined : inArray(auditEvents.action, filter.actions),
      filter.actor == null ? undefined : eq(auditEvents.actor, filter.actor),
      filter.target == null ? undefined : eq(auditEvents.target, filter.target),
      filter.from == null ? undefined : gte(auditEvents.time, filter.from),
      filter.to == null ? undefined : lt(auditEvents.time, filter.to),
    ];
    const cmp = direction === 'asc' ? sql.raw('>') : sql.raw('<');
    if (args.after != null) {
      if (field === 'seq') {
        const [seq] = decodeCursor(args.after, seqCursor);
        conditions.push(sql`${auditEvents.seq} ${cmp} ${seq}`);
      } else {
        const [time, seq] = decodeCursor(args.after, timeCursor);
        conditions.push(sql`(${auditEvents.time}, ${auditEvents.seq}) ${cmp} (${new Date(time).toISOString()}::timestamptz, ${seq}::bigint)`);
      }
    }
    const order = direction === 'asc' ? asc : desc;
    const orderBy = field === 'seq' ? [order(auditEvents.seq)] : [order(auditEvents.time), order(auditEvents.seq)];
    const rows = await this.db.withTenant(principal.orgId, (tx) =>
      tx.select().from(auditEvents).where(and(...conditions)).orderBy(...orderBy).limit(limit + 1));
    const cursorOf = (row: AuditEventRow): string => encodeCursor(field === 'seq' ? [row.seq] : [row.time.toISOString(), row.seq]);
    return toConnection(rows, limit, args.after != null, cursorOf, (row, cursor) => ({ cursor, node: toAuditEvent(row) }));
  }
}

export function toAuditEvent(row: AuditEventRow): AuditEvent {
  return {
    seq: String(row.seq), time: row.time, actor: row.actor, action: row.action, target: row.target, payload: row.payload,
    requestId: row.requestId, prevHash: row.prevHash, hash: row.hash,
  };
}
