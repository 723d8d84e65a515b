import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, desc, eq, isNull, or, sql } from 'drizzle-orm';
import { z } from 'zod';
import { enrollmentTokens, type Database, type EnrollmentTokenRow } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import { labelPairs, labelsFromPairs, labelsSchema, type Labels } from '../policies/label-selector.ts';
import type { CreatedEnrollmentToken, CreateEnrollmentTokenInput, EnrollmentToken, EnrollmentTokenConnection, EnrollmentTokenFilter } from '../agents/agent.types.ts';
import { visiblePage } from '../agents/visible-page.ts';
import { decodeCursor, encodeCursor, pageSize, toConnection } from '../graphql/relay-pagination.ts';
import { newEnrollmentToken } from './enrollment-token-format.ts';

const filterSchema = z.object({
  statuses: z.array(z.enum(['active', 'expired', 'used-up', 'revoked'], 'a status is "active", "expired", "used-up" or "revoked"')).min(1).max(4).nullish(),
});
const cursorSchema = z.tuple([z.string(), z.uuid()]);
// cursors carry millisecond times: compare at that precision (see agents/agent.service.ts)
const createdMs = sql`date_trunc('milliseconds', ${enrollmentTokens.createdAt})`;

const createSchema = z.object({
  name: z.string().trim().min(1).max(200),
  labels: labelsSchema.default({}),
  maxUses: z.number().int().min(1).max(100_000).default(1),
  expiresInHours: z.number().int().min(1).max(720).default(24),
});

/**
 * Enrollment tokens (docs/fleet.md §2): org-scoped, expiring, N-use, revocable, with the labels
 * every agent they enroll receives. The secret exists only in the creating answer; at rest,
 * SHA-256 of it. Creating and revoking need `create:Agent` (a token is the power to add agents)
 * and only for labels the caller may hold; listing needs `read:Agent` and shows no secret.
 */
@Injectable()
export class EnrollmentTokenService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService) {
    this.db = db;
    this.access = access;
    this.audit = audit;
  }

  async create(principal: Principal, input: CreateEnrollmentTokenInput, requestId: string): Promise<CreatedEnrollmentToken> {
    this.access.require(principal, 'create', 'Agent', undefined, requestId);
    const data = parseInput(createSchema, {
      name: input.name, labels: labelsFromPairs(input.labels), maxUses: input.maxUses ?? undefined, expiresInHours: input.expiresInHours ?? undefined,
    });
    // a label-limited operator may only hand out tokens for agents inside their perimeter
    this.access.require(principal, 'create', 'Agent', [{ labels: data.labels }], requestId);
    const id = randomUUID();
    const { token, secretHash } = newEnrollmentToken(principal.orgId, id);
    const row = await this.db.withTenant(principal.orgId, async (tx) => {
      const [inserted] = await tx.insert(enrollmentTokens).values({
        orgId: principal.orgId, id, name: data.name, secretHash, labels: data.labels, maxUses: data.maxUses,
        expiresAt: sql`now() + make_interval(hours => ${data.expiresInHours})`, createdBy: principal.actor,
      }).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'enrollment_token.created', target: `enrollment-token:${id}`,
        payload: { name: data.name, labels: data.labels, maxUses: data.maxUses, expiresAt: inserted!.expiresAt.toISOString(), ...authOf(principal) }, requestId,
      });
      return inserted!;
    });
    return { token, enrollmentToken: toEnrollmentToken(row) };
  }

  /** Newest first; a label-limited reader sees the tokens for agents inside their perimeter. */
  async list(principal: Principal, args: { first?: number; after?: string; filter?: EnrollmentTokenFilter }): Promise<EnrollmentTokenConnection> {
    const limit = pageSize(args.first);
    const f = parseInput(filterSchema, args.filter ?? {});
    const after = args.after == null ? null : decodeCursor(args.after, cursorSchema);
    const t = enrollmentTokens;
    const byStatus = { revoked: sql`${t.revokedAt} IS NOT NULL`, expired: sql`(${t.revokedAt} IS NULL AND ${t.expiresAt} <= now())`,
      'used-up': sql`(${t.revokedAt} IS NULL AND ${t.expiresAt} > now() AND ${t.uses} >= ${t.maxUses})`,
      active: sql`(${t.revokedAt} IS NULL AND ${t.expiresAt} > now() AND ${t.uses} < ${t.maxUses})` };
    const rows = await this.db.readTenant(principal.orgId, (tx) => visiblePage(limit, after, (position, count) => tx.select().from(t).where(and(
      eq(t.orgId, principal.orgId),
      f.statuses == null ? undefined : or(...f.statuses.map((status) => byStatus[status])),
      position == null ? undefined : sql`(${createdMs}, ${t.id}) < (${position[0]}::timestamptz, ${position[1]}::uuid)`,
    )).orderBy(desc(createdMs), desc(t.id)).limit(count), (row): [string, string] => [row.createdAt.toISOString(), row.id], (found) => this.access.filter(principal, 'read', 'Agent', found)));
    return toConnection(rows, limit, after != null, (row) => encodeCursor([row.createdAt.toISOString(), row.id]), (row, cursor) => ({ cursor, node: toEnrollmentToken(row) }));
  }

  async revoke(principal: Principal, id: string, requestId: string): Promise<EnrollmentToken> {
    this.access.require(principal, 'create', 'Agent', undefined, requestId);
    parseInput(z.uuid('must be an ID'), id);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const [existing] = await tx.select().from(enrollmentTokens).where(and(eq(enrollmentTokens.orgId, principal.orgId), eq(enrollmentTokens.id, id))).for('update');
      if (existing == null) throw notFound('the enrollment token');
      this.access.require(principal, 'create', 'Agent', [existing], requestId);
      const [row] = await tx.update(enrollmentTokens).set({ revokedAt: sql`coalesce(${enrollmentTokens.revokedAt}, now())` })
        .where(and(eq(enrollmentTokens.orgId, principal.orgId), eq(enrollmentTokens.id, id), isNull(enrollmentTokens.revokedAt))).returning();
      if (row == null) return toEnrollmentToken(existing);
      await this.audit.append(tx, principal.orgId, { actor: principal.actor, action: 'enrollment_token.revoked', target: `enrollment-token:${id}`, payload: { name: row.name, ...authOf(principal) }, requestId });
      return toEnrollmentToken(row);
    });
  }
}

function toEnrollmentToken(row: EnrollmentTokenRow): EnrollmentToken {
  const status = row.revokedAt != null ? 'revoked' : row.expiresAt.getTime() <= Date.now() ? 'expired' : row.uses >= row.maxUses ? 'used-up' : 'active';
  return {
    id: row.id, name: row.name, labels: labelPairs(row.labels as Labels), maxUses: row.maxUses, uses: row.uses, expiresAt: row.expiresAt,
    revokedAt: row.revokedAt, status, createdBy: row.createdBy, createdAt: row.createdAt,
  };
}
