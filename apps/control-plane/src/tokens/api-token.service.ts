import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, desc, eq } from 'drizzle-orm';
import { z } from 'zod';
import { apiTokens, type ApiTokenRow, type Database } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { isScope, type Action, type SubjectType } from '../access/permissions.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { newApiToken } from '../auth/api-token-format.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { PrincipalCache } from '../auth/principal-cache.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import type { ApiToken, CreateApiTokenInput, CreateApiTokenPayload } from './api-token.types.ts';

const createSchema = z.object({
  name: z.string().trim().min(1).max(200),
  scopes: z.array(z.string().refine(isScope, 'must be "*" or "action:Subject", e.g. "read:AuditEvent"')).min(1).max(100),
  expiresInDays: z.number().int().min(1).max(365).default(90),
});

/** API tokens for integrations: a user creates tokens for themselves; admins may revoke anyone's. */
@Injectable()
export class ApiTokenService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly cache: PrincipalCache;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, cache: PrincipalCache) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.cache = cache;
  }

  async list(principal: Principal): Promise<ApiToken[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(apiTokens).where(eq(apiTokens.orgId, principal.orgId)).orderBy(desc(apiTokens.createdAt)));
    return this.access.filter(principal, 'read', 'ApiToken', rows).map(toApiToken);
  }

  async create(principal: Principal, input: CreateApiTokenInput, requestId: string): Promise<CreateApiTokenPayload> {
    const data = parseInput(createSchema, { ...input, expiresInDays: input.expiresInDays ?? undefined });
    this.access.require(principal, 'create', 'ApiToken', [{ userId: principal.userId }], requestId);
    // a scope the caller does not hold would be dead weight at best and a surprise later at worst
    for (const scope of data.scopes) {
      if (scope === '*') continue;
      const [action, subject] = scope.split(':') as [Action, SubjectType];
      if (!principal.ability.can(action, subject)) {
        throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `your role does not allow ${scope}, so a token cannot have it`, { fields: [{ path: 'scopes', message: `${scope} is not allowed for your role` }] });
      }
    }
    const id = randomUUID();
    const { token, secretHash } = newApiToken(principal.orgId, id);
    const expiresAt = new Date(Date.now() + data.expiresInDays * 86_400_000);
    const row = await this.db.withTenant(principal.orgId, async (tx) => {
      const [inserted] = await tx.insert(apiTokens).values({ orgId: principal.orgId, id, userId: principal.userId, name: data.name, secretHash, scopes: data.scopes, expiresAt }).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'api_token.created', target: `api-token:${id}`,
        payload: { name: data.name, scopes: data.scopes, expiresAt: expiresAt.toISOString(), ...authOf(principal) }, requestId,
      });
      return inserted!;
    });
    return { token, apiToken: toApiToken(row) };
  }

  async revoke(principal: Principal, id: string, requestId: string): Promise<ApiToken> {
    parseInput(z.uuid('must be an ID'), id);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const [existing] = await tx.select().from(apiTokens).where(and(eq(apiTokens.orgId, principal.orgId), eq(apiTokens.id, id))).for('update');
      if (existing == null) throw notFound('the API token');
      this.access.require(principal, 'delete', 'ApiToken', [existing], requestId);
      if (existing.revokedAt != null) return toApiToken(existing);
      const [row] = await tx.update(apiTokens).set({ revokedAt: new Date() }).where(and(eq(apiTokens.orgId, principal.orgId), eq(apiTokens.id, id))).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'api_token.revoked', target: `api-token:${id}`, payload: { name: existing.name, owner: existing.userId, ...authOf(principal) }, requestId,
      });
      this.cache.forget(principal.orgId, { tokenId: id });
      return toApiToken(row!);
    });
  }
}

function toApiToken(row: ApiTokenRow): ApiToken {
  return {
    id: row.id, name: row.name, userId: row.userId, scopes: row.scopes, expiresAt: row.expiresAt, revokedAt: row.revokedAt,
    lastUsedAt: row.lastUsedAt, createdAt: row.createdAt,
  };
}
