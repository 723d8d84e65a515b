import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import { enrollmentTokens, type Database, type EnrollmentTokenRow } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import { labelPairs, labelsFromPairs, labelsSchema, type Labels } from '../policies/label-selector.ts';
import type { CreatedEnrollmentToken, CreateEnrollmentTokenInput, EnrollmentToken } from '../agents/agent.types.ts';
import { newEnrollmentToken } from './enrollment-token-format.ts';

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

  async list(principal: Principal): Promise<EnrollmentToken[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.orgId, principal.orgId)).orderBy(desc(enrollmentTokens.createdAt)).limit(500));
    return this.access.filter(principal, 'read', 'Agent', rows).map(toEnrollmentToken);
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
