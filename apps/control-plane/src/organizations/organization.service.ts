import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { apiTokens, memberships, organizations, users, type Database } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { newApiToken } from '../auth/api-token-format.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import { RoleService } from '../roles/role.service.ts';
import type { Organization, UpdateOrganizationInput } from './organization.types.ts';

const orgName = z.string().trim().min(1).max(200);
const bootstrapSchema = z.object({
  organization: orgName,
  email: z.email('must be an email address').max(320),
  displayName: z.string().trim().min(1).max(200),
  tokenDays: z.number().int().min(1).max(365),
});

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

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, roleService: RoleService) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.roles = roleService;
  }

  async get(principal: Principal): Promise<Organization> {
    const [row] = await this.db.withTenant(principal.orgId, (tx) => tx.select().from(organizations).where(eq(organizations.id, principal.orgId)));
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
   * Creates an organization with its built-in roles, its first owner and that owner's first API
   * token, in one transaction, and opens the audit chain with it. This is how an organization
   * comes to exist until OIDC sign-in's first-user bootstrap (next milestone): the CLI's
   * `bootstrap` command, run by whoever operates the server.
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
