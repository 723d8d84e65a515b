import type { IncomingHttpHeaders } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { and, eq } from 'drizzle-orm';
import { apiTokens, memberships, roles, sessions, users, type Database } from '@arca/db';
import { buildAbility } from '../access/ability-factory.ts';
import { rulesOfRole } from '../access/permission-schema.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { AuditThrottle } from '../audit/audit-throttle.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { CSRF_HEADER, csrfMatches, readCookie } from '../sessions/session-cookies.ts';
import { SessionService } from '../sessions/session.service.ts';
import { parseApiToken, parseOpaqueToken, secretMatches, SESSION_PREFIX } from './api-token-format.ts';
import type { Principal } from './principal.ts';
import { PrincipalCache } from './principal-cache.ts';

/** a session's last_seen_at is refreshed at most this often (the idle timeout's precision) */
const LAST_SEEN_REFRESH_MS = 60_000;

type Method = 'api-token' | 'session';
type FailureReason = 'malformed' | 'unknown' | 'revoked' | 'expired' | 'idle' | 'user-suspended' | 'csrf';

/** What authentication reads from a request (a Fastify request satisfies it). */
export interface AuthRequest {
  id: string;
  headers: IncomingHttpHeaders;
}

/**
 * Authenticates a request: `authorization: Bearer <API token>` for integrations, else the
 * dashboard's session cookie — which must come with its CSRF header and, when the browser sends
 * one, the dashboard's Origin. A bearer header wins: browsers never attach one by themselves, so
 * bearer requests need no CSRF defence.
 *
 * Every failure answers the same UNAUTHENTICATED error (no oracle for which part was wrong;
 * CSRF_REJECTED for a missing CSRF proof) and is counted, logged and — when the credential names
 * an existing organization — audited there, throttled so garbage cannot flood a tenant's log.
 * Successful token use is audited once a minute per token and per replica, with last_used_at.
 */
@Injectable()
export class AuthService {
  private readonly db: Database;
  private readonly audit: AuditLogService;
  private readonly metrics: MetricsService;
  private readonly sessions: SessionService;
  private readonly cache: PrincipalCache;
  private readonly publicOrigin: string | null;
  private readonly logger = new Logger('auth');
  private readonly throttle = new AuditThrottle();

  constructor(
    @Inject(DATABASE) db: Database, audit: AuditLogService, metrics: MetricsService, sessionService: SessionService, cache: PrincipalCache,
    @Inject(CONFIG) config: ControlPlaneConfig,
  ) {
    this.db = db;
    this.audit = audit;
    this.metrics = metrics;
    this.sessions = sessionService;
    this.cache = cache;
    this.publicOrigin = config.oidc?.publicOrigin ?? null;
  }

  async authenticate(request: AuthRequest): Promise<Principal> {
    const authorization = request.headers.authorization;
    if (authorization != null && authorization !== '') return this.authenticateToken(authorization, request.id);
    const cookie = readCookie(request.headers.cookie, this.sessions.cookies.session);
    if (cookie != null && cookie !== '') return this.authenticateSession(cookie, request);
    throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, 'sign in: send "authorization: Bearer <API token>", or sign in to the dashboard');
  }

  private async authenticateToken(authorization: string, requestId: string): Promise<Principal> {
    const match = /^Bearer ([^\s]+)$/i.exec(authorization);
    const parsed = match == null ? null : parseApiToken(match[1]!);
    if (parsed == null) return this.fail('api-token', 'malformed', null, null, requestId);
    const cacheKey = PrincipalCache.keyOf(match![1]!);
    const cached = this.cache.get(cacheKey);
    if (cached != null) return cached;

    const found = await this.db.readTenant(parsed.orgId, async (tx) => {
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
    if (found == null || !matches) return this.fail('api-token', 'unknown', parsed.orgId, parsed.tokenId, requestId);
    const now = Date.now();
    if (found.token.revokedAt != null) return this.fail('api-token', 'revoked', parsed.orgId, parsed.tokenId, requestId);
    if (found.token.expiresAt.getTime() <= now) return this.fail('api-token', 'expired', parsed.orgId, parsed.tokenId, requestId);
    if (found.user.status !== 'active') return this.fail('api-token', 'user-suspended', parsed.orgId, parsed.tokenId, requestId);

    const principal: Principal = {
      orgId: parsed.orgId,
      userId: found.user.id,
      roleId: found.role.id,
      roleName: found.role.name,
      tokenId: found.token.id,
      sessionId: null,
      scopes: found.token.scopes,
      ability: buildAbility({ userId: found.user.id, rules: rulesOfRole(found.role), scopes: found.token.scopes }),
      actor: `user:${found.user.id}`,
    };
    this.cache.set(cacheKey, principal, found.token.expiresAt.getTime(), now);
    if (this.throttle.due(`use:${found.token.id}`, now)) {
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

  private async authenticateSession(cookie: string, request: AuthRequest): Promise<Principal> {
    const parsed = parseOpaqueToken(SESSION_PREFIX, cookie);
    if (parsed == null) return this.fail('session', 'malformed', null, null, request.id);
    // CSRF before anything else: a forged cross-site request gets no further than this
    const origin = request.headers.origin;
    const csrf = request.headers[CSRF_HEADER];
    if ((origin != null && origin !== this.publicOrigin) || !csrfMatches(parsed.secret, typeof csrf === 'string' ? csrf : undefined)) {
      return this.fail('session', 'csrf', parsed.orgId, parsed.tokenId, request.id);
    }
    // the CSRF proof is checked on every request; only the database lookup is cached
    const cacheKey = PrincipalCache.keyOf(cookie);
    const cached = this.cache.get(cacheKey);
    if (cached != null) return cached;
    const found = await this.db.readTenant(parsed.orgId, async (tx) => {
      const [row] = await tx
        .select({ session: sessions, user: users, role: roles })
        .from(sessions)
        .innerJoin(users, and(eq(users.orgId, sessions.orgId), eq(users.id, sessions.userId)))
        .innerJoin(memberships, and(eq(memberships.orgId, users.orgId), eq(memberships.userId, users.id)))
        .innerJoin(roles, and(eq(roles.orgId, memberships.orgId), eq(roles.id, memberships.roleId)))
        .where(and(eq(sessions.orgId, parsed.orgId), eq(sessions.id, parsed.tokenId)));
      return row;
    });
    const matches = secretMatches(parsed.secret, found?.session.secretHash ?? Buffer.alloc(32));
    if (found == null || !matches) return this.fail('session', 'unknown', parsed.orgId, parsed.tokenId, request.id);
    const now = Date.now();
    if (found.session.revokedAt != null) return this.fail('session', 'revoked', parsed.orgId, parsed.tokenId, request.id);
    if (found.session.expiresAt.getTime() <= now) return this.fail('session', 'expired', parsed.orgId, parsed.tokenId, request.id);
    if (now - found.session.lastSeenAt.getTime() > this.sessions.idleMs) return this.fail('session', 'idle', parsed.orgId, parsed.tokenId, request.id);
    if (found.user.status !== 'active') return this.fail('session', 'user-suspended', parsed.orgId, parsed.tokenId, request.id);
    if (now - found.session.lastSeenAt.getTime() > LAST_SEEN_REFRESH_MS) {
      await this.db.withTenant(parsed.orgId, (tx) =>
        tx.update(sessions).set({ lastSeenAt: new Date(now) }).where(and(eq(sessions.orgId, parsed.orgId), eq(sessions.id, parsed.tokenId))));
    }
    const principal: Principal = {
      orgId: parsed.orgId,
      userId: found.user.id,
      roleId: found.role.id,
      roleName: found.role.name,
      tokenId: null,
      sessionId: found.session.id,
      scopes: null,
      ability: buildAbility({ userId: found.user.id, rules: rulesOfRole(found.role) }),
      actor: `user:${found.user.id}`,
    };
    // an idle session must not live on in the cache past its idle deadline either
    this.cache.set(cacheKey, principal, Math.min(found.session.expiresAt.getTime(), now + this.sessions.idleMs), now);
    return principal;
  }

  private async fail(method: Method, reason: FailureReason, orgId: string | null, credentialId: string | null, requestId: string | null): Promise<never> {
    this.metrics.authFailures.inc({ reason });
    this.logger.warn({ msg: 'authentication failed', method, reason, orgId, credentialId, requestId });
    if (orgId != null && this.throttle.due(`fail:${orgId}:${method}:${reason}`)) {
      // the organization may not exist (a forged credential): then there is no log to write to
      await this.audit.appendStandalone(orgId, {
        actor: 'anonymous', action: 'auth.failed', target: credentialId == null ? '' : `${method}:${credentialId}`,
        payload: { method, reason, throttledPerMinute: true }, requestId,
      }).catch(() => undefined);
    }
    if (reason === 'csrf') {
      throw new ControlPlaneError(ControlPlaneErrorCode.CsrfRejected, `requests authenticated by the session cookie need the ${CSRF_HEADER} header (the value of the csrf cookie) and the dashboard's Origin`);
    }
    throw new ControlPlaneError(
      ControlPlaneErrorCode.Unauthenticated,
      method === 'session' ? 'your session has ended: sign in again' : 'the API token is not valid: it may be mistyped, expired or revoked',
    );
  }
}
