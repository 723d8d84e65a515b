import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, eq, isNull } from 'drizzle-orm';
import { sessions, type Database, type TenantTx } from '@arca/db';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { newOpaqueToken, secretMatches, SESSION_PREFIX, type ParsedApiToken } from '../auth/api-token-format.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { PrincipalCache } from '../auth/principal-cache.ts';
import { cookieNames, csrfTokenFor, serializeCookie, type CookieNames } from './session-cookies.ts';

export interface NewSession {
  sessionId: string;
  expiresAt: Date;
  /** Set-Cookie values: the session and its CSRF token */
  cookies: string[];
}

/**
 * Dashboard sessions: created at sign-in (in the sign-in transaction), revoked at logout or when
 * their user is suspended. Authentication of a session cookie lives in AuthService, next to API
 * tokens, so both share one failure path.
 */
@Injectable()
export class SessionService {
  private readonly db: Database;
  private readonly audit: AuditLogService;
  private readonly config: ControlPlaneConfig;
  private readonly cache: PrincipalCache;
  readonly cookies: CookieNames;

  constructor(@Inject(DATABASE) db: Database, audit: AuditLogService, cache: PrincipalCache, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.audit = audit;
    this.cache = cache;
    this.config = config;
    this.cookies = cookieNames(config.sessions.cookieSecure);
  }

  get idleMs(): number {
    return this.config.sessions.idleMs;
  }

  async create(tx: TenantTx, orgId: string, userId: string, meta: { ip: string | null; userAgent: string | null }): Promise<NewSession> {
    const sessionId = randomUUID();
    const { token, secretHash } = newOpaqueToken(SESSION_PREFIX, orgId, sessionId);
    const expiresAt = new Date(Date.now() + this.config.sessions.ttlMs);
    await tx.insert(sessions).values({
      orgId, id: sessionId, userId, secretHash, expiresAt, ip: meta.ip?.slice(0, 64) ?? null, userAgent: meta.userAgent?.slice(0, 512) ?? null,
    });
    const secret = Buffer.from(token.slice(SESSION_PREFIX.length), 'base64url').subarray(32);
    const secure = this.config.sessions.cookieSecure;
    const maxAge = Math.floor(this.config.sessions.ttlMs / 1000);
    return {
      sessionId,
      expiresAt,
      cookies: [
        serializeCookie(this.cookies.session, token, { secure, httpOnly: true, maxAge }),
        serializeCookie(this.cookies.csrf, csrfTokenFor(secret), { secure, httpOnly: false, maxAge }),
      ],
    };
  }

  /** Set-Cookie values that delete the session and CSRF cookies. */
  clearingCookies(): string[] {
    const secure = this.config.sessions.cookieSecure;
    return [
      serializeCookie(this.cookies.session, '', { secure, httpOnly: true, maxAge: 0 }),
      serializeCookie(this.cookies.csrf, '', { secure, httpOnly: false, maxAge: 0 }),
    ];
  }

  /** Logout: revokes the session the cookie proves (secret checked) and records it. False when it was not active. */
  async signOut(cookie: ParsedApiToken, requestId: string | null): Promise<boolean> {
    const { orgId, tokenId: sessionId } = cookie;
    return this.db.withTenant(orgId, async (tx) => {
      const [row] = await tx.select().from(sessions).where(and(eq(sessions.orgId, orgId), eq(sessions.id, sessionId))).for('update');
      if (row == null || !secretMatches(cookie.secret, row.secretHash) || row.revokedAt != null) return false;
      await tx.update(sessions).set({ revokedAt: new Date(), revokedReason: 'logout' }).where(and(eq(sessions.orgId, orgId), eq(sessions.id, sessionId)));
      await this.audit.append(tx, orgId, {
        actor: `user:${row.userId}`, action: 'auth.signed_out', target: `session:${sessionId}`, payload: { auth: { method: 'session', sessionId } }, requestId,
      });
      this.cache.forget(orgId, { sessionId });
      return true;
    });
  }

  /** Revokes every active session of a user (suspension), in the caller's transaction; audited there. */
  async revokeAllOfUser(tx: TenantTx, orgId: string, userId: string, reason: string, actor: string, requestId: string | null): Promise<number> {
    const revoked = await tx.update(sessions).set({ revokedAt: new Date(), revokedReason: reason })
      .where(and(eq(sessions.orgId, orgId), eq(sessions.userId, userId), isNull(sessions.revokedAt))).returning({ id: sessions.id });
    this.cache.forget(orgId, { userId });
    if (revoked.length > 0) {
      await this.audit.append(tx, orgId, {
        actor, action: 'session.revoked', target: `user:${userId}`, payload: { reason, sessionIds: revoked.map((r) => r.id) }, requestId,
      });
    }
    return revoked.length;
  }
}
