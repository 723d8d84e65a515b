import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, desc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import { invitations, roles, users, type Database, type InvitationRow, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { rulesOfRole } from '../access/permission-schema.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { INVITATION_PREFIX, newOpaqueToken } from '../auth/api-token-format.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import { RoleService } from '../roles/role.service.ts';
import type { CreateInvitationInput, CreateInvitationPayload, Invitation, InvitationStatus } from './invitation.types.ts';

const uuid = z.uuid('must be an ID');
const createSchema = z.object({ email: z.email('must be an email address').max(320), roleId: uuid, expiresInHours: z.number().int().min(1).max(720).default(72) });

export interface IssuedInvitation {
  id: string;
  code: string;
  url: string | null;
  expiresAt: Date;
}

/**
 * Invitations: an owner or admin invites an email address with a role they hold; the invitee
 * accepts by signing in through the link with that (verified) address (SignInService). Codes
 * are single-use, expire, and only their SHA-256 is stored. An organization's bootstrap link is
 * an owner invitation created by "system" (OrganizationService).
 */
@Injectable()
export class InvitationService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly roles: RoleService;
  private readonly publicOrigin: string | null;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, roleService: RoleService, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.roles = roleService;
    this.publicOrigin = config.oidc?.publicOrigin ?? null;
  }

  async list(principal: Principal): Promise<Invitation[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) =>
      tx.select({ i: invitations, roleName: roles.name }).from(invitations)
        .innerJoin(roles, and(eq(roles.orgId, invitations.orgId), eq(roles.id, invitations.roleId)))
        .where(eq(invitations.orgId, principal.orgId)).orderBy(desc(invitations.createdAt)).limit(500));
    return rows.map(({ i, roleName }) => toInvitation(i, roleName));
  }

  async create(principal: Principal, input: CreateInvitationInput, requestId: string): Promise<CreateInvitationPayload> {
    this.access.require(principal, 'create', 'Invitation', undefined, requestId);
    const data = parseInput(createSchema, { ...input, expiresInHours: input.expiresInHours ?? undefined });
    return this.db.withTenant(principal.orgId, async (tx) => {
      const role = await this.roles.lockRole(tx, principal.orgId, data.roleId);
      // inviting someone with a role is granting it: the caller must hold its rules
      this.roles.requireHoldsAll(principal, rulesOfRole(role), requestId);
      const [member] = await tx.select({ id: users.id }).from(users)
        .where(and(eq(users.orgId, principal.orgId), sql`lower(${users.email}) = lower(${data.email})`));
      if (member != null) throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, `${data.email} is already a member of this organization`);
      const issued = await this.issue(tx, principal.orgId, { email: data.email, roleId: role.id, roleName: role.name, hours: data.expiresInHours, actor: principal.actor, requestId, auth: authOf(principal) });
      const [row] = await tx.select().from(invitations).where(and(eq(invitations.orgId, principal.orgId), eq(invitations.id, issued.id)));
      return { code: issued.code, url: issued.url, invitation: toInvitation(row!, role.name) };
    });
  }

  /** Creates an invitation in `tx` and audits it (also used for the bootstrap link). */
  async issue(tx: TenantTx, orgId: string, input: { email: string; roleId: string; roleName: string; hours: number; actor: string; requestId: string | null; auth?: Record<string, unknown> }): Promise<IssuedInvitation> {
    const id = randomUUID();
    const { token: code, secretHash } = newOpaqueToken(INVITATION_PREFIX, orgId, id);
    const expiresAt = new Date(Date.now() + input.hours * 3_600_000);
    await tx.insert(invitations).values({ orgId, id, email: input.email, roleId: input.roleId, secretHash, createdBy: input.actor, expiresAt });
    await this.audit.append(tx, orgId, {
      actor: input.actor, action: 'invitation.created', target: `invitation:${id}`,
      payload: { email: input.email, role: input.roleName, expiresAt: expiresAt.toISOString(), ...(input.auth ?? {}) }, requestId: input.requestId,
    });
    return { id, code, expiresAt, url: this.publicOrigin == null ? null : `${this.publicOrigin}/auth/login?invitation=${code}` };
  }

  async revoke(principal: Principal, id: string, requestId: string): Promise<Invitation> {
    this.access.require(principal, 'delete', 'Invitation', undefined, requestId);
    parseInput(uuid, id);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const [existing] = await tx.select().from(invitations).where(and(eq(invitations.orgId, principal.orgId), eq(invitations.id, id))).for('update');
      if (existing == null) throw notFound('the invitation');
      const [role] = await tx.select({ name: roles.name }).from(roles).where(and(eq(roles.orgId, principal.orgId), eq(roles.id, existing.roleId)));
      if (existing.acceptedAt != null) throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, 'the invitation was already accepted: remove or suspend the user instead');
      if (existing.revokedAt != null) return toInvitation(existing, role?.name ?? '');
      const [row] = await tx.update(invitations).set({ revokedAt: new Date() }).where(and(eq(invitations.orgId, principal.orgId), eq(invitations.id, id))).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'invitation.revoked', target: `invitation:${id}`, payload: { email: existing.email, ...authOf(principal) }, requestId,
      });
      return toInvitation(row!, role?.name ?? '');
    });
  }
}

export function invitationStatus(row: InvitationRow, now: number = Date.now()): InvitationStatus {
  if (row.acceptedAt != null) return 'accepted';
  if (row.revokedAt != null) return 'revoked';
  return row.expiresAt.getTime() <= now ? 'expired' : 'pending';
}

function toInvitation(row: InvitationRow, roleName: string): Invitation {
  return {
    id: row.id, email: row.email, roleId: row.roleId, roleName, status: invitationStatus(row), createdBy: row.createdBy, createdAt: row.createdAt,
    expiresAt: row.expiresAt, acceptedAt: row.acceptedAt, acceptedUserId: row.acceptedUserId, revokedAt: row.revokedAt,
  };
}
