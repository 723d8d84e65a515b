import { Controller, Get, HttpCode, Inject, Post, Query, Req, Res, UseFilters } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { PublicRoute } from '../access/require-permission.decorator.ts';
import { INVITATION_PREFIX, parseOpaqueToken, SESSION_PREFIX } from '../auth/api-token-format.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { HttpErrorFilter } from '../ops/http-error.filter.ts';
import { CSRF_HEADER, csrfMatches, LOGIN_COOKIE_MAX_AGE_SECONDS, readCookie, serializeCookie } from '../sessions/session-cookies.ts';
import { SessionService } from '../sessions/session.service.ts';
import { decodeLoginAttempt, encodeLoginAttempt, isSafeReturnPath } from './login-cookie.ts';
import { OidcClientService } from './oidc-client.service.ts';
import { SignInService } from './sign-in.service.ts';

/**
 * The dashboard's sign-in routes (OIDC authorization code + PKCE):
 * - GET /auth/login?org=<organization ID> | ?invitation=<code> [&returnTo=/path]: starts an
 *   attempt (login cookie) and redirects to the provider.
 * - GET /auth/callback: the provider's redirect; checks everything, signs the person in (session
 *   and CSRF cookies) and redirects to returnTo. Refusals answer 401 with a reason-specific
 *   message when the person can act on it, and are audited.
 * - POST /auth/logout: revokes the session (CSRF header required) and clears the cookies.
 * They are public routes: the session is what they create or end.
 */
@Controller('auth')
@UseFilters(HttpErrorFilter)
export class AuthController {
  private readonly oidc: OidcClientService;
  private readonly signIn: SignInService;
  private readonly sessions: SessionService;
  private readonly config: ControlPlaneConfig;

  constructor(oidc: OidcClientService, signIn: SignInService, sessions: SessionService, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.oidc = oidc;
    this.signIn = signIn;
    this.sessions = sessions;
    this.config = config;
  }

  @Get('login')
  @PublicRoute()
  async login(
    @Res() reply: FastifyReply,
    @Query('org') org?: string,
    @Query('invitation') invitation?: string,
    @Query('returnTo') returnTo?: string,
  ): Promise<void> {
    if (!this.oidc.enabled) throw disabled();
    const code = invitation == null ? null : parseOpaqueToken(INVITATION_PREFIX, invitation);
    if (invitation != null && code == null) throw invalid('invitation', 'not an invitation code: use the link you were sent');
    if (code == null && !z.uuid().safeParse(org).success) throw invalid('org', 'sign in with ?org=<organization ID> or through an invitation link');
    if (returnTo != null && !isSafeReturnPath(returnTo)) throw invalid('returnTo', 'must be a path on this site, e.g. /jobs');
    const { url, checks } = await this.oidc.beginLogin();
    const attempt = encodeLoginAttempt({ ...checks, orgId: code?.orgId ?? org!, invitation: code == null ? null : invitation!, returnTo: returnTo ?? '/' });
    void reply
      .header('set-cookie', serializeCookie(this.sessions.cookies.login, attempt, { secure: this.config.sessions.cookieSecure, httpOnly: true, maxAge: LOGIN_COOKIE_MAX_AGE_SECONDS }))
      .header('cache-control', 'no-store')
      .redirect(url, 302);
  }

  @Get('callback')
  @PublicRoute()
  async callback(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    if (!this.oidc.enabled) throw disabled();
    // the attempt is single-use whatever happens next
    const cookies = [serializeCookie(this.sessions.cookies.login, '', { secure: this.config.sessions.cookieSecure, httpOnly: true, maxAge: 0 })];
    void reply.header('set-cookie', cookies).header('cache-control', 'no-store');
    const attempt = decodeLoginAttempt(readCookie(request.headers.cookie, this.sessions.cookies.login));
    if (attempt == null) {
      await this.signIn.recordFailure(null, 'no-login-attempt', request.id);
      throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, 'no sign-in in progress in this browser (or it took more than ten minutes): start again');
    }
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
    const outcome = await this.oidc.completeLogin(query, attempt);
    if (!outcome.ok) {
      await this.signIn.recordFailure(attempt.orgId, outcome.reason, request.id, { detail: outcome.detail.slice(0, 300) });
      throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, 'sign-in failed: the identity provider\'s answer could not be verified; start again');
    }
    const invitation = attempt.invitation == null ? null : parseOpaqueToken(INVITATION_PREFIX, attempt.invitation);
    const result = await this.signIn.complete(
      { orgId: attempt.orgId, invitation },
      outcome.identity,
      { ip: request.ip, userAgent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'] : null },
      request.id,
    );
    if (!result.ok) throw new ControlPlaneError(ControlPlaneErrorCode.Unauthenticated, `sign-in refused: ${result.message}`);
    void reply.header('set-cookie', [...cookies, ...result.session.cookies]).redirect(attempt.returnTo, 302);
  }

  @Post('logout')
  @HttpCode(200)
  @PublicRoute()
  async logout(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const cookie = readCookie(request.headers.cookie, this.sessions.cookies.session);
    const parsed = cookie == null ? null : parseOpaqueToken(SESSION_PREFIX, cookie);
    let signedOut = false;
    if (parsed != null) {
      // logging someone out is a state change too: same CSRF rule as GraphQL
      const origin = request.headers.origin;
      const csrf = request.headers[CSRF_HEADER];
      if ((origin != null && origin !== this.config.oidc?.publicOrigin) || !csrfMatches(parsed.secret, typeof csrf === 'string' ? csrf : undefined)) {
        throw new ControlPlaneError(ControlPlaneErrorCode.CsrfRejected, `sign out with the ${CSRF_HEADER} header (the value of the csrf cookie)`);
      }
      signedOut = await this.sessions.signOut(parsed, request.id);
    }
    void reply.header('set-cookie', this.sessions.clearingCookies()).header('cache-control', 'no-store').send({ signedOut });
  }
}

function disabled(): ControlPlaneError {
  return new ControlPlaneError(ControlPlaneErrorCode.Disabled, 'OIDC sign-in is not configured on this server (ARCA_CP_OIDC_*)');
}

function invalid(path: string, message: string): ControlPlaneError {
  return new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `${path}: ${message}`, { fields: [{ path, message }] });
}
