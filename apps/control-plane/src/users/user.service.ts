import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, asc, count, eq, ilike, or, sql } from 'drizzle-orm';
import { z } from 'zod';
import { memberships, roles, users, type Database, type RoleRow, type TenantTx, type UserRow } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { rulesOfRole } from '../access/permission-schema.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { PrincipalCache } from '../auth/principal-cache.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { conflictAs, notFound, parseInput } from '../errors/input-validation.ts';
import { decodeCursor, encodeCursor, pageSize, toConnection } from '../graphql/relay-pagination.ts';
import { RoleService, toRole } from '../roles/role.service.ts';
import { SessionService } from '../sessions/session.service.ts';
import type { CreateUserInput, Membership, UpdateUserInput, User, UserConnection, UserFilter } from './user.types.ts';

const uuid = z.uuid('must be an ID');
const email = z.email('must be an email address').max(320);
const displayName = z.string().trim().min(1).max(200);
const createSchema = z.object({ email, displayName, externalId: z.string().min(1).max(512).optional(), roleId: uuid });
const updateSchema = z.object({ id: uuid, displayName: displayName.optional(), status: z.enum(['active', 'suspended']).optional() });
const cursorSchema = z.tuple([z.string(), z.string()]);

/** Users and their memberships (role assignments) in the caller's organization. */
@Injectable()
export class UserService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly roles: RoleService;
  private readonly sessions: SessionService;
  private readonly cache: PrincipalCache;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, roleService: RoleService, sessionService: SessionService, cache: PrincipalCache) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.roles = roleService;
    this.sessions = sessionService;
    this.cache = cache;
  }

  async list(principal: Principal, first: number | undefined, after: string | undefined, filter: UserFilter | undefined): Promise<UserConnection> {
    const limit = pageSize(first);
    const position = after == null ? null : decodeCursor(after, cursorSchema);
    const search = filter?.search?.trim();
    const rows = await this.db.readTenant(principal.orgId, (tx) =>
      tx.select().from(users).where(and(
        eq(users.orgId, principal.orgId),
        filter?.status == null ? undefined : eq(users.status, filter.status),
        search == null || search === '' ? undefined : or(ilike(users.email, `%${escapeLike(search)}%`), ilike(users.displayName, `%${escapeLike(search)}%`)),
        position == null ? undefined : sql`(lower(${users.email}), ${users.id}) > (${position[0]}, ${position[1]}::uuid)`,
      )).orderBy(sql`lower(${users.email})`, asc(users.id)).limit(limit + 1));
    return toConnection(rows.map(toUser), limit, position != null, (u) => encodeCursor([u.email.toLowerCase(), u.id]), (node, cursor) => ({ node, cursor }));
  }

  async get(principal: Principal, id: string): Promise<User> {
    parseInput(uuid, id);
    const [row] = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(users).where(and(eq(users.orgId, principal.orgId), eq(users.id, id))));
    if (row == null) throw notFound('the user');
    return toUser(row);
  }

  async memberships(principal: Principal): Promise<Membership[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) =>
      tx.select({ m: memberships, u: users, r: roles }).from(memberships)
        .innerJoin(users, and(eq(users.orgId, memberships.orgId), eq(users.id, memberships.userId)))
        .innerJoin(roles, and(eq(roles.orgId, memberships.orgId), eq(roles.id, memberships.roleId)))
        .where(eq(memberships.orgId, principal.orgId))
        .orderBy(sql`lower(${users.email})`));
    return rows.map(({ m, u, r }) => ({ createdAt: m.createdAt, updatedAt: m.updatedAt, userRow: toUser(u), roleRow: toRole(r) }));
  }

  async create(principal: Principal, input: CreateUserInput, requestId: string): Promise<User> {
    this.access.require(principal, 'create', 'User', undefined, requestId);
    this.access.require(principal, 'create', 'Membership', undefined, requestId);
    const data = parseInput(createSchema, input);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const role = await this.roles.lockRole(tx, principal.orgId, data.roleId);
      this.roles.requireHoldsAll(principal, rulesOfRole(role), requestId);
      const id = randomUUID();
      const [row] = await conflictAs(`a user with email ${data.email} or this external ID already exists`, () =>
        tx.insert(users).values({ orgId: principal.orgId, id, email: data.email, displayName: data.displayName, externalId: data.externalId ?? null }).returning());
      await tx.insert(memberships).values({ orgId: principal.orgId, userId: id, roleId: role.id });
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'user.created', target: `user:${id}`,
        payload: { email: data.email, displayName: data.displayName, role: role.name, ...authOf(principal) }, requestId,
      });
      return toUser(row!);
    });
  }

  async update(principal: Principal, input: UpdateUserInput, requestId: string): Promise<User> {
    this.access.require(principal, 'update', 'User', undefined, requestId);
    const data = parseInput(updateSchema, input);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lockUser(tx, principal.orgId, data.id);
      if (data.status === 'suspended') {
        if (data.id === principal.userId) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'you cannot suspend yourself');
        await this.requireMayManageHolder(tx, principal, data.id, requestId);
        await this.requireNotLastOwner(tx, principal.orgId, data.id, 'suspend');
      }
      const [row] = await tx.update(users)
        .set({ ...(data.displayName != null ? { displayName: data.displayName } : {}), ...(data.status != null ? { status: data.status } : {}), updatedAt: new Date() })
        .where(and(eq(users.orgId, principal.orgId), eq(users.id, data.id))).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'user.updated', target: `user:${data.id}`,
        payload: { before: { displayName: existing.displayName, status: existing.status }, after: { displayName: row!.displayName, status: row!.status }, ...authOf(principal) },
        requestId,
      });
      // a suspended person's dashboard sessions end now (their API tokens stop at the status check)
      if (data.status === 'suspended') await this.sessions.revokeAllOfUser(tx, principal.orgId, data.id, 'user-suspended', principal.actor, requestId);
      this.cache.forget(principal.orgId, { userId: data.id });
      return toUser(row!);
    });
  }

  async delete(principal: Principal, id: string, requestId: string): Promise<boolean> {
    this.access.require(principal, 'delete', 'User', undefined, requestId);
    parseInput(uuid, id);
    if (id === principal.userId) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'you cannot delete yourself');
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lockUser(tx, principal.orgId, id);
      await this.requireMayManageHolder(tx, principal, id, requestId);
      await this.requireNotLastOwner(tx, principal.orgId, id, 'delete');
      await tx.delete(users).where(and(eq(users.orgId, principal.orgId), eq(users.id, id)));
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'user.deleted', target: `user:${id}`, payload: { email: existing.email, ...authOf(principal) }, requestId,
      });
      this.cache.forget(principal.orgId, { userId: id });
      return true;
    });
  }

  /** Gives a user another role: the caller must hold both the old role's and the new role's rules. */
  async setRole(principal: Principal, userId: string, roleId: string, requestId: string): Promise<Membership> {
    this.access.require(principal, 'update', 'Membership', undefined, requestId);
    parseInput(z.object({ userId: uuid, roleId: uuid }), { userId, roleId });
    return this.db.withTenant(principal.orgId, async (tx) => {
      const user = await this.lockUser(tx, principal.orgId, userId);
      const role = await this.roles.lockRole(tx, principal.orgId, roleId);
      const current = await this.roleOf(tx, principal.orgId, userId);
      this.roles.requireHoldsAll(principal, rulesOfRole(role), requestId);
      this.roles.requireHoldsAll(principal, rulesOfRole(current), requestId);
      if (current.name === 'owner' && current.builtin && role.id !== current.id) await this.requireNotLastOwner(tx, principal.orgId, userId, 'demote');
      const [m] = await tx.update(memberships).set({ roleId, updatedAt: new Date() })
        .where(and(eq(memberships.orgId, principal.orgId), eq(memberships.userId, userId))).returning();
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'membership.role_changed', target: `user:${userId}`,
        payload: { before: current.name, after: role.name, ...authOf(principal) }, requestId,
      });
      this.cache.forget(principal.orgId, { userId });
      return { createdAt: m!.createdAt, updatedAt: m!.updatedAt, userRow: toUser(user), roleRow: toRole(role) };
    });
  }

  private async lockUser(tx: TenantTx, orgId: string, id: string): Promise<UserRow> {
    const [row] = await tx.select().from(users).where(and(eq(users.orgId, orgId), eq(users.id, id))).for('update');
    if (row == null) throw notFound('the user');
    return row;
  }

  private async roleOf(tx: TenantTx, orgId: string, userId: string): Promise<RoleRow> {
    const [row] = await tx.select({ r: roles }).from(memberships)
      .innerJoin(roles, and(eq(roles.orgId, memberships.orgId), eq(roles.id, memberships.roleId)))
      .where(and(eq(memberships.orgId, orgId), eq(memberships.userId, userId)));
    if (row == null) throw notFound('the user\'s membership');
    return row.r;
  }

  /** Removing or suspending someone requires holding their role's rules (an admin cannot remove an owner). */
  private async requireMayManageHolder(tx: TenantTx, principal: Principal, userId: string, requestId: string): Promise<void> {
    this.roles.requireHoldsAll(principal, rulesOfRole(await this.roleOf(tx, principal.orgId, userId)), requestId);
  }

  /** An organization always keeps at least one active owner. */
  private async requireNotLastOwner(tx: TenantTx, orgId: string, userId: string, what: string): Promise<void> {
    const role = await this.roleOf(tx, orgId, userId);
    if (!(role.builtin && role.name === 'owner')) return;
    const [row] = await tx.select({ n: count() }).from(memberships)
      .innerJoin(users, and(eq(users.orgId, memberships.orgId), eq(users.id, memberships.userId)))
      .where(and(eq(memberships.orgId, orgId), eq(memberships.roleId, role.id), eq(users.status, 'active')));
    if ((row?.n ?? 0) <= 1) throw new ControlPlaneError(ControlPlaneErrorCode.Conflict, `you cannot ${what} the last owner: make someone else owner first`);
  }
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export function toUser(row: UserRow): User {
  return {
    id: row.id, email: row.email, displayName: row.displayName, externalId: row.externalId, status: row.status,
    createdAt: row.createdAt, updatedAt: row.updatedAt,
  };
}
