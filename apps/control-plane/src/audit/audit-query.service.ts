import { Inject, Injectable } from '@nestjs/common';
import { and, asc, desc, eq, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { auditEvents, type AuditEventRow, type Database, type TenantStatement } from '@arca/db';
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

/** Which parts a page query has: one prepared statement per shape (at most 2 × 2 × 2^6 = 256). */
interface PageShape {
  field: 'seq' | 'time';
  direction: 'asc' | 'desc';
  actions: boolean;
  actor: boolean;
  target: boolean;
  from: boolean;
  to: boolean;
  after: boolean;
}

/**
 * Lists audit events with keyset pagination: (seq) or (time, seq), ascending or descending. Each
 * query shape is built once by Drizzle, with placeholders, and reused (`Database.statement`).
 */
@Injectable()
export class AuditQueryService {
  private readonly db: Database;
  private readonly statements = new Map<string, TenantStatement<AuditEventRow[]>>();

  constructor(@Inject(DATABASE) db: Database) {
    this.db = db;
  }

  async list(principal: Principal, args: { first?: number; after?: string; filter?: AuditEventFilter; orderBy?: AuditEventOrder }): Promise<AuditEventConnection> {
    const limit = pageSize(args.first);
    const filter = parseInput(filterSchema, args.filter ?? {});
    const field = args.orderBy?.field ?? 'seq';
    const direction = args.orderBy?.direction ?? 'desc';
    const values: Record<string, unknown> = { orgId: principal.orgId, limit: limit + 1 };
    if (filter.actions != null) values.actions = filter.actions;
    if (filter.actor != null) values.actor = filter.actor;
    if (filter.target != null) values.target = filter.target;
    if (filter.from != null) values.from = filter.from.toISOString();
    if (filter.to != null) values.to = filter.to.toISOString();
    if (args.after != null) {
      if (field === 'seq') {
        [values.afterSeq] = decodeCursor(args.after, seqCursor);
      } else {
        const [time, seq] = decodeCursor(args.after, timeCursor);
        values.afterTime = new Date(time).toISOString();
        values.afterSeq = seq;
      }
    }
    const shape: PageShape = {
      field, direction, actions: filter.actions != null, actor: filter.actor != null, target: filter.target != null,
      from: filter.from != null, to: filter.to != null, after: args.after != null,
    };
    const rows = await this.db.readStatement(principal.orgId, this.statementFor(shape), values);
    const cursorOf = (row: AuditEventRow): string => encodeCursor(field === 'seq' ? [row.seq] : [row.time.toISOString(), row.seq]);
    return toConnection(rows, limit, args.after != null, cursorOf, (row, cursor) => ({ cursor, node: toAuditEvent(row) }));
  }

  private statementFor(shape: PageShape): TenantStatement<AuditEventRow[]> {
    const key = JSON.stringify(shape);
    let statement = this.statements.get(key);
    if (statement == null) {
      const p = sql.placeholder;
      const cmp = shape.direction === 'asc' ? sql.raw('>') : sql.raw('<');
      const conditions: Array<SQL | undefined> = [
        eq(auditEvents.orgId, p('orgId')),
        shape.actions ? sql`${auditEvents.action} = ANY(${p('actions')})` : undefined,
        shape.actor ? eq(auditEvents.actor, p('actor')) : undefined,
        shape.target ? eq(auditEvents.target, p('target')) : undefined,
        shape.from ? sql`${auditEvents.time} >= ${p('from')}::timestamptz` : undefined,
        shape.to ? sql`${auditEvents.time} < ${p('to')}::timestamptz` : undefined,
        !shape.after ? undefined
          : shape.field === 'seq' ? sql`${auditEvents.seq} ${cmp} ${p('afterSeq')}`
            : sql`(${auditEvents.time}, ${auditEvents.seq}) ${cmp} (${p('afterTime')}::timestamptz, ${p('afterSeq')}::bigint)`,
      ];
      const order = shape.direction === 'asc' ? asc : desc;
      const orderBy = shape.field === 'seq' ? [order(auditEvents.seq)] : [order(auditEvents.time), order(auditEvents.seq)];
      statement = this.db.statement((orm) => orm.select().from(auditEvents).where(and(...conditions)).orderBy(...orderBy).limit(p('limit')).prepare('audit_events_page'));
      this.statements.set(key, statement);
    }
    return statement;
  }
}

export function toAuditEvent(row: AuditEventRow): AuditEvent {
  return {
    seq: String(row.seq), time: row.time, actor: row.actor, action: row.action, target: row.target, payload: row.payload,
    requestId: row.requestId, prevHash: row.prevHash, hash: row.hash,
  };
}
