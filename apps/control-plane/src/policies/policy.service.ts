import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, asc, eq, inArray } from 'drizzle-orm';
import { z } from 'zod';
import { policies, stores, type Database, type PolicyRow, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { conflictAs, notFound, parseInput } from '../errors/input-validation.ts';
import { CLOCK, type Clock } from '../scheduler/clock.ts';
import { nextSlot } from '../scheduler/cron-schedule.ts';
import { effectivePolicy } from './effective-policy.ts';
import { selectorFromTerms, selectorTerms, type LabelSelector, type Labels } from './label-selector.ts';
import { createPolicySchema, mergedPolicyProblems, updatePolicySchema } from './policy-input.ts';
import type { CreatePolicyInput, Policy, UpdatePolicyInput } from './policy.types.ts';
import type { Retention } from './retention.ts';

/** Policies (SLA domains): CRUD, validation, `next_run_at` upkeep and effective-policy lookups. */
@Injectable()
export class PolicyService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly clock: Clock;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, @Inject(CLOCK) clock: Clock) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.clock = clock;
  }

  async list(principal: Principal): Promise<Policy[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(policies).where(eq(policies.orgId, principal.orgId)).orderBy(asc(policies.priority), asc(policies.createdAt)));
    return this.access.filter(principal, 'read', 'Policy', rows).map(toPolicy);
  }

  async get(principal: Principal, id: string): Promise<Policy> {
    parseInput(z.uuid('must be an ID'), id);
    const [row] = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(policies).where(and(eq(policies.orgId, principal.orgId), eq(policies.id, id))));
    if (row == null || this.access.filter(principal, 'read', 'Policy', [row]).length === 0) throw notFound('the policy');
    return toPolicy(row);
  }

  /** The effective policy of resources with these effective labels (null: none matches). */
  async effectiveFor(principal: Principal, labels: Labels): Promise<Policy | null> {
    const rows = await this.db.readTenant(principal.orgId, (tx) => this.enabledPolicies(tx, principal.orgId));
    const best = effectivePolicy(rows.map(candidate), labels);
    return best == null ? null : toPolicy(best.row);
  }

  /** Every enabled policy of the tenant (the candidates of effective-policy choice). */
  enabledPolicies(tx: TenantTx, orgId: string): Promise<PolicyRow[]> {
    return tx.select().from(policies).where(and(eq(policies.orgId, orgId), eq(policies.enabled, true)));
  }

  async create(principal: Principal, input: CreatePolicyInput, requestId: string): Promise<Policy> {
    this.access.require(principal, 'create', 'Policy', undefined, requestId);
    const data = parseInput(createPolicySchema, { ...stripNulls(input), selector: selectorFromTerms(input.selector) });
    return this.db.withTenant(principal.orgId, async (tx) => {
      await this.requireStores(tx, principal.orgId, data.storeId, data.copyStoreId ?? null);
      const id = randomUUID();
      const now = this.clock.now();
      const [row] = await conflictAs(`a policy named "${data.name}" already exists`, () => tx.insert(policies).values({
        orgId: principal.orgId, id, name: data.name, schedule: data.schedule, timezone: data.timezone, rpoMinutes: data.rpoMinutes,
        retention: data.retention ?? {}, storeId: data.storeId, copyStoreId: data.copyStoreId ?? null, restoreTestEveryDays: data.restoreTestEveryDays ?? null,
        selector: data.selector, priority: data.priority, enabled: data.enabled,
        nextRunAt: data.enabled ? nextSlot(data.schedule, data.timezone, now) : null, createdAt: now, updatedAt: now,
      }).returning());
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'policy.created', target: `policy:${id}`, payload: { policy: auditView(row!), ...authOf(principal) }, requestId,
      });
      return toPolicy(row!);
    });
  }

  async update(principal: Principal, input: UpdatePolicyInput, requestId: string): Promise<Policy> {
    this.access.require(principal, 'update', 'Policy', undefined, requestId);
    const data = parseInput(updatePolicySchema, { ...stripNulls(input), selector: selectorFromTerms(input.selector) });
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lock(tx, principal.orgId, data.id);
      this.access.require(principal, 'update', 'Policy', [existing], requestId);
      const cleared = new Set(data.clear);
      const merged = {
        name: data.name ?? existing.name,
        schedule: data.schedule ?? existing.schedule,
        timezone: data.timezone ?? existing.timezone,
        rpoMinutes: data.rpoMinutes ?? existing.rpoMinutes,
        retention: cleared.has('retention') ? {} : (data.retention ?? existing.retention),
        storeId: data.storeId ?? existing.storeId,
        copyStoreId: cleared.has('copyStoreId') ? null : (data.copyStoreId ?? existing.copyStoreId),
        restoreTestEveryDays: cleared.has('restoreTestEveryDays') ? null : (data.restoreTestEveryDays ?? existing.restoreTestEveryDays),
        selector: data.selector ?? existing.selector,
        priority: data.priority ?? existing.priority,
        enabled: data.enabled ?? existing.enabled,
      };
      const problems = mergedPolicyProblems(merged);
      if (problems.length > 0) {
        throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, { fields: problems });
      }
      await this.requireStores(tx, principal.orgId, merged.storeId, merged.copyStoreId);
      const now = this.clock.now();
      // a new schedule, zone or re-enabling starts from the next slot after now; otherwise the
      // pending slot stays (changing a label selector must not postpone a due run)
      const timing = merged.schedule !== existing.schedule || merged.timezone !== existing.timezone || (merged.enabled && !existing.enabled);
      const nextRunAt = !merged.enabled ? null : timing || existing.nextRunAt == null ? nextSlot(merged.schedule, merged.timezone, now) : existing.nextRunAt;
      const [row] = await conflictAs(`a policy named "${merged.name}" already exists`, () =>
        tx.update(policies).set({ ...merged, nextRunAt, updatedAt: now }).where(and(eq(policies.orgId, principal.orgId), eq(policies.id, data.id))).returning());
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'policy.updated', target: `policy:${data.id}`, payload: { before: auditView(existing), after: auditView(row!), ...authOf(principal) }, requestId,
      });
      return toPolicy(row!);
    });
  }

  async delete(principal: Principal, id: string, requestId: string): Promise<boolean> {
    this.access.require(principal, 'delete', 'Policy', undefined, requestId);
    parseInput(z.uuid('must be an ID'), id);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lock(tx, principal.orgId, id);
      this.access.require(principal, 'delete', 'Policy', [existing], requestId);
      await conflictAs(`the policy "${existing.name}" is still referenced`, () => tx.delete(policies).where(and(eq(policies.orgId, principal.orgId), eq(policies.id, id))));
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'policy.deleted', target: `policy:${id}`, payload: { policy: auditView(existing), ...authOf(principal) }, requestId,
      });
      return true;
    });
  }

  private async lock(tx: TenantTx, orgId: string, id: string): Promise<PolicyRow> {
    const [row] = await tx.select().from(policies).where(and(eq(policies.orgId, orgId), eq(policies.id, id))).for('update');
    if (row == null) throw notFound('the policy');
    return row;
  }

  /** Both stores exist in the tenant (RLS hides other tenants' rows: theirs are "not found"). */
  private async requireStores(tx: TenantTx, orgId: string, storeId: string, copyStoreId: string | null): Promise<void> {
    const ids = copyStoreId == null ? [storeId] : [storeId, copyStoreId];
    const found = await tx.select({ id: stores.id }).from(stores).where(and(eq(stores.orgId, orgId), inArray(stores.id, ids)));
    const known = new Set(found.map((r) => r.id));
    const fields = [
      ...(known.has(storeId) ? [] : [{ path: 'storeId', message: 'no such store in your organization: create it first (createStore)' }]),
      ...(copyStoreId == null || known.has(copyStoreId) ? [] : [{ path: 'copyStoreId', message: 'no such store in your organization' }]),
    ];
    if (fields.length > 0) throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`, { fields });
  }
}

export function candidate(row: PolicyRow): { id: string; selector: LabelSelector; priority: number; enabled: boolean; createdAt: Date; row: PolicyRow } {
  return { id: row.id, selector: (row.selector ?? {}) as LabelSelector, priority: row.priority, enabled: row.enabled, createdAt: row.createdAt, row };
}

/** GraphQL leaves optional inputs as null; zod's optional() wants them absent. */
function stripNulls<T extends object>(input: T): T {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v != null)) as T;
}

function auditView(row: PolicyRow): Record<string, unknown> {
  return {
    name: row.name, schedule: row.schedule, timezone: row.timezone, rpoMinutes: row.rpoMinutes, retention: row.retention, storeId: row.storeId,
    copyStoreId: row.copyStoreId, restoreTestEveryDays: row.restoreTestEveryDays, selector: row.selector, priority: row.priority, enabled: row.enabled,
  };
}

export function toPolicy(row: PolicyRow): Policy {
  return {
    id: row.id, name: row.name, schedule: row.schedule, timezone: row.timezone, rpoMinutes: row.rpoMinutes,
    retention: row.retention == null || Object.keys(row.retention).length === 0 ? null : (row.retention as Retention), storeId: row.storeId, copyStoreId: row.copyStoreId ?? null,
    restoreTestEveryDays: row.restoreTestEveryDays ?? null, selector: selectorTerms((row.selector ?? {}) as LabelSelector),
    priority: row.priority, enabled: row.enabled, nextRunAt: row.nextRunAt ?? null, createdAt: row.createdAt, updatedAt: row.updatedAt,
  };
}
