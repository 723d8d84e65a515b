import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, count, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import { apiTokens, memberships, organizations, roles, users, type Database, type OrganizationRow, type TenantStatement } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { newApiToken } from '../auth/api-token-format.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import { InvitationService } from '../invitations/invitation.service.ts';
import { RoleService } from '../roles/role.service.ts';
import type { Organization, UpdateOrganizationInput } from './organization.types.ts';

const orgName = z.string().trim().min(1).max(200);
const bootstrapSchema = z.object({
  organization: orgName,
  email: z.email('must be an email address').max(320),
  displayName: z.string().trim().min(1).max(200),
  tokenDays: z.number().int().min(1).max(365),
});

const bootstrapLinkSchema = z.object({
  organization: orgName.optional(),
  orgId: z.uuid('must be an organization ID').optional(),
  email: z.email('must be an email address').max(320),
  hours: z.number().int().min(1).max(168),
});

/** The one-time owner link of an organization that has no owner yet. */
export interface BootstrapLinkResult {
  orgId: string;
  invitationId: string;
  /** the invitation code; printed once by the CLI, only its hash is stored */
  code: string;
  /** the sign-in link (null when OIDC is not configured) */
  url: string | null;
  expiresAt: Date;
}

export interface BootstrapResult {
  orgId: string;
  userId: string;
  tokenId: string;
  /** the owner's first API token: printed once by the CLI, never stored */
  token: string;
}

@Injectable()
export class OrganizationService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly roles: RoleService;
  private readonly invitations: InvitationService;
  private readonly byId: TenantStatement<OrganizationRow[]>;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, roleService: RoleService, invitationService: InvitationService) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.roles = roleService;
    this.invitations = invitationService;
    this.byId = db.statement((orm) => orm.select().from(organizations).where(eq(organizations.id, sql.placeholder('orgId'))).prepare('organization_by_id'));
  }

  async get(principal: Principal): Promise<Organization> {
    const [row] = await this.db.readStatement(principal.orgId, this.byId, { orgId: principal.orgId });
    if (row == null) throw notFound('the organization');
    return row;
  }

  async update(principal: Principal, input: UpdateOrganizationInput, requestId: string): Promise<Organization> {
    this.access.require(principal, 'update', 'Organization', undefined, requestId);
    const name = parseInput(orgName, input.name);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const [before] = await tx.select().from(organizations).where(eq(organizations.id, principal.orgId)).for('update');
      const [row] = await tx.update(organizations).set({ name, updatedAt: new Date() }).where(eq(organizations.id, principal.orgId)).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'organization.updated', target: `organization:${principal.orgId}`,
        payload: { before: { name: before?.name }, after: { name }, ...authOf(principal) }, requestId,
      });
      return row!;
    });
  }

  /**
   * First-user bootstrap for OIDC sign-in (the CLI's `bootstrap`, run by whoever operates the
   * server): creates the organization and its built-in roles with no user at all, plus a
   * single-use owner invitation for `email`, or — with `orgId` — a new link for an existing
   * organization that has no active owner (e.g. the first link expired). Whoever signs in through
   * the link with that email, verified by the provider, becomes the owner. Both halves are
   * needed: the link (only the operator saw it) and control of the address at the provider. A
   * rule like "the first sign-in with email X becomes owner" would hand the organization to
   * whoever reaches the provider first with a matching, possibly unverified, claim.
   */
  async bootstrapLink(input: { organization?: string; orgId?: string; email: string; hours?: number }): Promise<BootstrapLinkResult> {
    const data = parseInput(bootstrapLinkSchema, { ...input, hours: input.hours ?? 24 });
    const orgId = data.orgId ?? randomUUID();
    return this.db.withTenant(orgId, async (tx) => {
      let ownerRoleId: string;
      if (data.orgId == null) {
        if (data.organization == null) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'name the new organization', { fields: [{ path: 'organization', message: 'required' }] });
        await tx.insert(organizations).values({ id: orgId, name: data.organization });
        await this.audit.initChain(tx, orgId);
        ownerRoleId = (await this.roles.seedBuiltinRoles(tx, orgId)).get('owner')!;
        await this.audit.append(tx, orgId, {
          actor: 'system', action: 'organization.created', target: `organization:${orgId}`, payload: { name: data.organization, owner: null, bootstrapEmail: data.email },
        });
      } else {
        const [org] = await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, orgId)).for('update');
        if (org == null) throw notFound('the organization');
        const [owner] = await tx.select({ id: roles.id }).from(roles).where(and(eq(roles.orgId, orgId), eq(roles.name, 'owner'), eq(roles.builtin, true)));
        if (owner == null) throw notFound('the owner role');
        const [active] = await tx.select({ n: count() }).from(memberships)
          .innerJoin(users, and(eq(users.orgId, memberships.orgId), eq(users.id, memberships.userId)))
          .where(and(eq(memberships.orgId, orgId), eq(memberships.roleId, owner.id), eq(users.status, 'active')));
        if ((active?.n ?? 0) > 0) throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, 'the organization already has an owner: owners invite people from the dashboard or the API');
        ownerRoleId = owner.id;
      }
      const issued = await this.invitations.issue(tx, orgId, { email: data.email, roleId: ownerRoleId, roleName: 'owner', hours: data.hours, actor: 'system', requestId: null });
      return { orgId, invitationId: issued.id, code: issued.code, url: issued.url, expiresAt: issued.expiresAt };
    });
  }

  /**
   * Creates an organization with its built-in roles, its first owner and that owner's first API
   * token, in one transaction, and opens the audit chain with it: the CLI's `bootstrap
   * --api-token` (and `bootstrap` without OIDC configured), for API-first and embedded use. The
   * owner can sign in later: a provisioned user is bound to their (issuer, subject) at the first
   * sign-in with the same, verified, email.
   */
  async bootstrap(input: { organization: string; email: string; displayName: string; tokenDays?: number }): Promise<BootstrapResult> {
    const data = parseInput(bootstrapSchema, { ...input, tokenDays: input.tokenDays ?? 30 });
    const orgId = randomUUID();
    const userId = randomUUID();
    const tokenId = randomUUID();
    const { token, secretHash } = newApiToken(orgId, tokenId);
    await this.db.withTenant(orgId, async (tx) => {
      await tx.insert(organizations).values({ id: orgId, name: data.organization });
      await this.audit.initChain(tx, orgId);
      const roleIds = await this.roles.seedBuiltinRoles(tx, orgId);
      await tx.insert(users).values({ orgId, id: userId, email: data.email, displayName: data.displayName });
      await tx.insert(memberships).values({ orgId, userId, roleId: roleIds.get('owner')! });
      const expiresAt = new Date(Date.now() + data.tokenDays * 86_400_000);
      await tx.insert(apiTokens).values({ orgId, id: tokenId, userId, name: 'bootstrap', secretHash, scopes: ['*'], expiresAt });
      await this.audit.append(tx, orgId, {
        actor: 'system', action: 'organization.created', target: `organization:${orgId}`,
        payload: { name: data.organization, owner: { userId, email: data.email }, tokenId, tokenExpiresAt: expiresAt.toISOString() },
      });
    });
    return { orgId, userId, tokenId, token };
  }
}
