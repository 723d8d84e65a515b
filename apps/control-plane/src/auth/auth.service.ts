import { Inject, Injectable, Logger } from '@nestjs/common';
import { and, eq } from 'drizzle-orm';
import { apiTokens, memberships, roles, users, type Database } from '@arca/db';
import { buildAbility } from '../access/ability-factory.ts';
import { rulesOfRole } from '../access/permission-schema.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { parseApiToken, secretMatches } from './api-token-format.ts';
import type { Principal } from './principal.ts';

/** token use and failures are audited at most this often per token / per org and reason */
const AUDIT_THROTTLE_MS = 60_000;
const THROTTLE_MAX_KEYS = 10_000;

type FailureReason = 'malformed' | 'unknown' | 'revoked' | 'expired' | 'user-suspended';

/**
 * Authenticates API tokens. Every failure answers the same UNAUTHENTICATED error (no oracle for
 * which part was wrong) and is counted, logged and — when the token names an existing
 * organization — audited there, throttled so garbage tokens cannot flood a tenant's log.
 * Successful use is audited once a minute per token and per replica, with last_used_at.
 */
@Injectable()
export class AuthService {
  private readonly db: Database;
  private readonly audit: AuditLogService;
  private readonly metrics: MetricsService;
  private readonly logger = new Logger('auth');
  private readonly lastAudited = new Map<string, number>();

  constructor(@Inject(DATABASE) db: Database, audit: AuditLogService, metrics: MetricsService) {
    this.db = db;
    this.audit = audit;
    this.metrics = metrics;
  }

  /** `authorization` header value → principal, or UNAUTHENTICATED. */
  async authenticate(authorization: string | undefined, requestId: string | null): Promise<Principal> {
    if (authorization == null || authorization === '') {
      throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, 'sign in: send "authorization: Bearer <API token>"');
    }
    const match = /^Bearer ([^\s]+)$/i.exec(authorization);
    const parsed = match == null ? null : parseApiToken(match[1]!);
    if (parsed == null) return this.fail('malformed', null, null, requestId);

    const found = await this.db.withTenant(parsed.orgId, async (tx) => {
      const [row] = await tx
        .select({ token: apiTokens, user: users, role: roles })
        .from(apiTokens)
        .innerJoin(users, and(eq(users.orgId, apiTokens.orgId), eq(users.id, apiTokens.userId)))
        .innerJoin(memberships, and(eq(memberships.orgId, users.orgId), eq(memberships.userId, users.id)))
        .innerJoin(roles, and(eq(roles.orgId, memberships.orgId), eq(roles.id, memberships.roleId)))
        .where(and(eq(apiTokens.orgId, parsed.orgId), eq(apiTokens.id, parsed.tokenId)));
      return row;
    });
    // compare even when nothing was found, so both paths do the same work
    const matches = secretMatches(parsed.secret, found?.token.secretHash ?? Buffer.alloc(32));
    if (found == null || !matches) return this.fail('unknown', parsed.orgId, parsed.tokenId, requestId);
    const now = Date.now();
    if (found.token.revokedAt != null) return this.fail('revoked', parsed.orgId, parsed.tokenId, requestId);
    if (found.token.expiresAt.getTime() <= now) return this.fail('expired', parsed.orgId, parsed.tokenId, requestId);
    if (found.user.status !== 'active') return this.fail('user-suspended', parsed.orgId, parsed.tokenId, requestId);

    const principal: Principal = {
      orgId: parsed.orgId,
      userId: found.user.id,
      roleId: found.role.id,
      roleName: found.role.name,
      tokenId: found.token.id,
      scopes: found.token.scopes,
      ability: buildAbility({ userId: found.user.id, rules: rulesOfRole(found.role), scopes: found.token.scopes }),
      actor: `user:${found.user.id}`,
    };
    if (this.dueForAudit(`use:${found.token.id}`, now)) {
      await this.db.withTenant(parsed.orgId, async (tx) => {
        await tx.update(apiTokens).set({ lastUsedAt: new Date(now) }).where(and(eq(apiTokens.orgId, parsed.orgId), eq(apiTokens.id, parsed.tokenId)));
        await this.audit.append(tx, parsed.orgId, {
          actor: principal.actor, action: 'auth.token_used', target: `api-token:${found.token.id}`,
          payload: { auth: { method: 'api-token', tokenId: found.token.id } }, requestId,
        });
      });
    }
    return principal;
  }

  private async fail(reason: FailureReason, orgId: string | null, tokenId: string | null, requestId: string | null): Promise<never> {
    this.metrics.authFailures.inc({ reason });
    this.logger.warn({ msg: 'authentication failed', reason, orgId, tokenId, requestId });
    if (orgId != null && this.dueForAudit(`fail:${orgId}:${reason}`, Date.now())) {
      // the organization may not exist (a forged token): then there is no log to write to
      await this.audit.appendStandalone(orgId, {
        actor: 'anonymous', action: 'auth.failed', target: tokenId == null ? '' : `api-token:${tokenId}`,
        payload: { reason, throttledPerMinute: true }, requestId,
      }).catch(() => undefined);
    }
    throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, 'the API token is not valid: it may be mistyped, expired or revoked');
  }

  private dueForAudit(key: string, now: number): boolean {
    const last = this.lastAudited.get(key);
    if (last != null && now - last < AUDIT_THROTTLE_MS) return false;
    if (this.lastAudited.size >= THROTTLE_MAX_KEYS) this.lastAudited.clear();
    this.lastAudited.set(key, now);
    return true;
  }
}
