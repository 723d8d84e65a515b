import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, asc, eq } from 'drizzle-orm';
import { z } from 'zod';
import { memberships, roles, type Database, type RoleRow, type StoredPermission, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { customRulesSchema, rulesOfRole } from '../access/permission-schema.ts';
import { ACTIONS, BUILTIN_ROLES, SUBJECTS, type PermissionRule } from '../access/permissions.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { PrincipalCache } from '../auth/principal-cache.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { conflictAs, notFound, parseInput } from '../errors/input-validation.ts';
import type { CreateRoleInput, PermissionRuleInput, Role, UpdateRoleInput } from './role.types.ts';

const roleName = z.string().regex(/^[a-z][a-z0-9-]{1,62}$/, 'lowercase letters, digits and "-", 2-63 characters, starting with a letter');
const uuid = z.uuid('must be an ID');

const createSchema = z.object({ name: roleName, description: z.string().max(1000).default(''), permissions: customRulesSchema });
const updateSchema = z.object({ id: uuid, description: z.string().max(1000).optional(), permissions: customRulesSchema.optional() });

@Injectable()
export class RoleService {
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

  /** Creates the built-in roles of a new organization (in its creating transaction). */
  async seedBuiltinRoles(tx: TenantTx, orgId: string): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    for (const name of BUILTIN_ROLES) {
      const id = randomUUID();
      ids.set(name, id);
      await tx.insert(roles).values({ orgId, id, name, builtin: true, description: `built-in ${name} role` });
    }
    return ids;
  }

  async list(principal: Principal): Promise<Role[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(roles).orderBy(asc(roles.builtin), asc(roles.name)));
    return rows.map(toRole);
  }

  async get(principal: Principal, id: string): Promise<Role> {
    parseInput(uuid, id);
    const [row] = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(roles).where(and(eq(roles.orgId, principal.orgId), eq(roles.id, id))));
    if (row == null) throw notFound('the role');
    return toRole(row);
  }

  async create(principal: Principal, input: CreateRoleInput, requestId: string): Promise<Role> {
    this.access.require(principal, 'create', 'Role', undefined, requestId);
    const data = parseInput(createSchema, { ...input, permissions: input.permissions.map(fromRuleInput) });
    this.requireHoldsAll(principal, data.permissions as PermissionRule[], requestId);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const id = randomUUID();
      const [row] = await conflictAs(`a role named "${data.name}" already exists`, () =>
        tx.insert(roles).values({ orgId: principal.orgId, id, name: data.name, description: data.description, permissions: data.permissions as StoredPermission[] }).returning());
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'role.created', target: `role:${id}`,
        payload: { name: data.name, permissions: data.permissions, ...authOf(principal) }, requestId,
      });
      return toRole(row!);
    });
  }

  async update(principal: Principal, input: UpdateRoleInput, requestId: string): Promise<Role> {
    this.access.require(principal, 'update', 'Role', undefined, requestId);
    const data = parseInput(updateSchema, { ...input, permissions: input.permissions?.map(fromRuleInput) });
    if (data.permissions != null) this.requireHoldsAll(principal, data.permissions as PermissionRule[], requestId);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lockRole(tx, principal.orgId, data.id);
      if (existing.builtin) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'built-in roles cannot be changed: create a custom role instead');
      // changing a role changes what its members may do: the caller must hold what it grants today too
      this.requireHoldsAll(principal, rulesOfRole(existing), requestId);
      const [row] = await tx.update(roles)
        .set({ ...(data.description != null ? { description: data.description } : {}), ...(data.permissions != null ? { permissions: data.permissions as StoredPermission[] } : {}), updatedAt: new Date() })
        .where(and(eq(roles.orgId, principal.orgId), eq(roles.id, data.id))).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'role.updated', target: `role:${data.id}`,
        payload: { name: existing.name, before: { description: existing.description, permissions: existing.permissions }, after: { description: row!.description, permissions: row!.permissions }, ...authOf(principal) },
        requestId,
      });
      // the role's members now hold other rules
      this.cache.forget(principal.orgId);
      return toRole(row!);
    });
  }

  async delete(principal: Principal, id: string, requestId: string): Promise<boolean> {
    this.access.require(principal, 'delete', 'Role', undefined, requestId);
    parseInput(uuid, id);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lockRole(tx, principal.orgId, id);
      if (existing.builtin) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'built-in roles cannot be deleted');
      const [member] = await tx.select({ userId: memberships.userId }).from(memberships).where(and(eq(memberships.orgId, principal.orgId), eq(memberships.roleId, id))).limit(1);
      if (member != null) throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, `the role "${existing.name}" still has members: give them another role first`);
      await conflictAs(`the role "${existing.name}" is still in use`, () => tx.delete(roles).where(and(eq(roles.orgId, principal.orgId), eq(roles.id, id))));
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'role.deleted', target: `role:${id}`, payload: { name: existing.name, permissions: existing.permissions, ...authOf(principal) }, requestId,
      });
      return true;
    });
  }

  /** Loads a role for a change (FOR UPDATE), NOT_FOUND when absent. */
  async lockRole(tx: TenantTx, orgId: string, id: string): Promise<RoleRow> {
    const [row] = await tx.select().from(roles).where(and(eq(roles.orgId, orgId), eq(roles.id, id))).for('update');
    if (row == null) throw notFound('the role');
    return row;
  }

  /**
   * No one grants what they do not hold: creating, changing or assigning a role requires the
   * caller to hold every rule it grants, unconditionally unless the granted rule is itself
   * label-conditioned. So an admin cannot mint a role (or take the owner role) that may change
   * the organization's settings.
   */
  requireHoldsAll(principal: Principal, rules: readonly PermissionRule[], requestId: string | null): void {
    for (const rule of rules) {
      if (rule.inverted === true) continue;
      for (const [action, subject] of this.expand(rule)) {
        const relevant = principal.ability.relevantRuleFor(action, subject);
        const conditional = rule.labels != null || rule.own === true;
        const holds = relevant != null && !relevant.inverted && (conditional || relevant.conditions == null);
        if (!holds) this.access.deny(principal, action, subject, requestId, `you cannot grant ${action} on ${subject}: you do not hold it yourself`);
      }
    }
  }

  private expand(rule: PermissionRule): Array<[PermissionRule['action'], PermissionRule['subject']]> {
    const actions = rule.action === 'manage' ? ACTIONS.filter((a) => a !== 'manage') : [rule.action];
    const subjects = rule.subject === 'all' ? SUBJECTS.filter((s) => s !== 'all') : [rule.subject];
    return actions.flatMap((a) => subjects.map((s): [PermissionRule['action'], PermissionRule['subject']] => [a, s]));
  }
}

function fromRuleInput(input: PermissionRuleInput): unknown {
  const labels = input.labels == null ? undefined : Object.fromEntries(input.labels.map((l) => [l.key, l.values]));
  return { action: input.action, subject: input.subject, ...(labels == null ? {} : { labels }) };
}

export function toRole(row: RoleRow): Role {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    builtin: row.builtin,
    permissions: rulesOfRole(row).map((r) => ({
      action: r.action,
      subject: r.subject,
      labels: Object.entries(r.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, values]) => ({ key, values: values ?? [] })),
      own: r.own === true,
      inverted: r.inverted === true,
    })),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
