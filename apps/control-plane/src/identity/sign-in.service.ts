import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { invitations, memberships, roles, users, type Database, type TenantTx, type UserRow } from '@arca/db';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { AuditThrottle } from '../audit/audit-throttle.ts';
import { secretMatches, type ParsedApiToken } from '../auth/api-token-format.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { invitationStatus } from '../invitations/invitation.service.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { SessionService, type NewSession } from '../sessions/session.service.ts';
import type { OidcFailureReason, OidcIdentity } from './oidc-client.service.ts';

export type SignInFailureReason =
  | OidcFailureReason
  | 'no-login-attempt'
  | 'not-a-member'
  | 'email-not-verified'
  | 'email-mismatch'
  | 'invitation-invalid'
  | 'already-member'
  | 'user-suspended';

export type SignInOutcome =
  | { ok: true; orgId: string; userId: string; session: NewSession }
  | SignInFailure;
export interface SignInFailure {
  ok: false;
  reason: SignInFailureReason;
  message: string;
}

/** What the person asked to sign in to: an organization, or an invitation (which names its organization). */
export interface SignInTarget {
  orgId: string;
  invitation: ParsedApiToken | null;
}

const MESSAGES: Partial<Record<SignInFailureReason, string>> = {
  'not-a-member': 'you are not a member of this organization: ask an administrator for an invitation',
  'email-not-verified': 'your identity provider does not report your email address as verified',
  'email-mismatch': 'this invitation was sent to another email address',
  'invitation-invalid': 'this invitation is not valid: it may have expired, been used or been revoked',
  'already-member': 'a user with this email address is already a member of this organization',
  'user-suspended': 'your account in this organization is suspended',
};

/**
 * Turns a verified OIDC identity into a user of one organization and a session:
 * 1. the user whose (issuer, subject) it is — the stable identity OpenID Connect guarantees;
 * 2. else, with an invitation: a new user with the invited role, if the provider reports the
 *    invited email address as verified (the invitation is then used up);
 * 3. else, a user provisioned with that email (createUser, SCIM, API-token bootstrap) who never
 *    signed in, again only with a verified email — and from then on bound to (issuer, subject).
 * Suspended users are refused. Every outcome is audited: `auth.signed_in` with the change it made,
 * or `auth.failed` (throttled per organization and reason, as for API tokens).
 */
@Injectable()
export class SignInService {
  private readonly db: Database;
  private readonly audit: AuditLogService;
  private readonly sessions: SessionService;
  private readonly metrics: MetricsService;
  private readonly logger = new Logger('sign-in');
  private readonly throttle = new AuditThrottle();

  constructor(@Inject(DATABASE) db: Database, audit: AuditLogService, sessionService: SessionService, metrics: MetricsService) {
    this.db = db;
    this.audit = audit;
    this.sessions = sessionService;
    this.metrics = metrics;
  }

  async complete(target: SignInTarget, identity: OidcIdentity, meta: { ip: string | null; userAgent: string | null }, requestId: string): Promise<SignInOutcome> {
    const outcome = await this.db.withTenant(target.orgId, async (tx): Promise<SignInOutcome> => {
      let user = await this.byIdentity(tx, target.orgId, identity);
      const changes: Record<string, unknown> = {};
      if (user == null && target.invitation != null) {
        const accepted = await this.acceptInvitation(tx, target.orgId, target.invitation, identity, requestId);
        if ('reason' in accepted) return accepted;
        user = accepted.user;
        changes.invitationId = target.invitation.tokenId;
      } else if (user == null) {
        const linked = await this.linkProvisioned(tx, target.orgId, identity, requestId);
        if ('reason' in linked) return linked;
        user = linked.user;
        changes.linkedIdentity = true;
      }
      if (user.status !== 'active') return failure('user-suspended');
      await tx.update(users).set({ lastSignInAt: new Date() }).where(and(eq(users.orgId, target.orgId), eq(users.id, user.id)));
      const session = await this.sessions.create(tx, target.orgId, user.id, meta);
      await this.audit.append(tx, target.orgId, {
        actor: `user:${user.id}`, action: 'auth.signed_in', target: `session:${session.sessionId}`,
        payload: { auth: { method: 'oidc', sessionId: session.sessionId }, issuer: identity.issuer, subject: identity.subject, expiresAt: session.expiresAt.toISOString(), ...changes },
        requestId,
      });
      return { ok: true, orgId: target.orgId, userId: user.id, session };
    });
    if (!outcome.ok) await this.recordFailure(target.orgId, outcome.reason, requestId, { issuer: identity.issuer, subject: identity.subject });
    return outcome;
  }

  /** Audits (throttled), counts and logs a refused sign-in. */
  async recordFailure(orgId: string | null, reason: SignInFailureReason, requestId: string, detail: Record<string, unknown> = {}): Promise<void> {
    this.metrics.authFailures.inc({ reason });
    this.logger.warn({ msg: 'sign-in refused', reason, orgId, requestId, ...detail });
    if (orgId != null && this.throttle.due(`${orgId}:${reason}`)) {
      // the organization may not exist (the login cookie is the browser's): then there is no log
      await this.audit.appendStandalone(orgId, {
        actor: 'anonymous', action: 'auth.failed', target: '', payload: { method: 'oidc', reason, throttledPerMinute: true, ...detail }, requestId,
      }).catch(() => undefined);
    }
  }

  private async byIdentity(tx: TenantTx, orgId: string, identity: OidcIdentity): Promise<UserRow | null> {
    const [row] = await tx.select().from(users)
      .where(and(eq(users.orgId, orgId), eq(users.oidcIssuer, identity.issuer), eq(users.oidcSubject, identity.subject)));
    return row ?? null;
  }

  private async acceptInvitation(tx: TenantTx, orgId: string, code: ParsedApiToken, identity: OidcIdentity, requestId: string): Promise<{ user: UserRow } | SignInFailure> {
    // FOR UPDATE: two sign-ins racing on one code serialize here, and the second sees it used
    const [invitation] = await tx.select().from(invitations).where(and(eq(invitations.orgId, orgId), eq(invitations.id, code.tokenId))).for('update');
    if (invitation == null || !secretMatches(code.secret, invitation.secretHash) || invitationStatus(invitation) !== 'pending') return failure('invitation-invalid');
    if (!identity.emailVerified || identity.email == null) return failure('email-not-verified');
    if (identity.email.toLowerCase() !== invitation.email.toLowerCase()) return failure('email-mismatch');
    const [existing] = await tx.select({ id: users.id }).from(users).where(and(eq(users.orgId, orgId), sql`lower(${users.email}) = lower(${identity.email})`));
    if (existing != null) return failure('already-member');
    const [role] = await tx.select().from(roles).where(and(eq(roles.orgId, orgId), eq(roles.id, invitation.roleId)));
    const id = randomUUID();
    const now = new Date();
    const [user] = await tx.insert(users).values({
      orgId, id, email: invitation.email, displayName: (identity.name ?? invitation.email).slice(0, 200) || invitation.email,
      oidcIssuer: identity.issuer, oidcSubject: identity.subject,
    }).returning();
    await tx.insert(memberships).values({ orgId, userId: id, roleId: invitation.roleId });
    await tx.update(invitations).set({ acceptedAt: now, acceptedUserId: id }).where(and(eq(invitations.orgId, orgId), eq(invitations.id, invitation.id)));
    await this.audit.append(tx, orgId, {
      actor: `user:${id}`, action: 'invitation.accepted', target: `invitation:${invitation.id}`,
      payload: { email: invitation.email, role: role?.name, invitedBy: invitation.createdBy, userId: id, issuer: identity.issuer, subject: identity.subject }, requestId,
    });
    return { user: user! };
  }

  private async linkProvisioned(tx: TenantTx, orgId: string, identity: OidcIdentity, requestId: string): Promise<{ user: UserRow } | SignInFailure> {
    if (identity.email == null) return failure('not-a-member');
    const [candidate] = await tx.select().from(users)
      .where(and(eq(users.orgId, orgId), isNull(users.oidcSubject), sql`lower(${users.email}) = lower(${identity.email})`)).for('update');
    if (candidate == null) return failure('not-a-member');
    if (!identity.emailVerified) return failure('email-not-verified');
    const [user] = await tx.update(users).set({ oidcIssuer: identity.issuer, oidcSubject: identity.subject, updatedAt: new Date() })
      .where(and(eq(users.orgId, orgId), eq(users.id, candidate.id))).returning();
    await this.audit.append(tx, orgId, {
      actor: `user:${candidate.id}`, action: 'user.identity_linked', target: `user:${candidate.id}`,
      payload: { email: candidate.email, issuer: identity.issuer, subject: identity.subject }, requestId,
    });
    return { user: user! };
  }
}

function failure(reason: SignInFailureReason): SignInFailure {
  return { ok: false, reason, message: MESSAGES[reason] ?? 'sign-in failed: start again from the sign-in page' };
}
