import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, asc, eq } from 'drizzle-orm';
import { z } from 'zod';
import { agents, resources, type Database, type ResourceRow, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { conflictAs, notFound, parseInput } from '../errors/input-validation.ts';
import { effectiveLabels, labelPairs, labelsFromPairs, type Labels } from '../policies/label-selector.ts';
import { createResourceSchema, postgresSpecOf, specOf, updateResourceSchema, type ResourceSpec } from './resource-input.ts';
import type { CreateResourceInput, Resource, UpdateResourceInput } from './resource.types.ts';

/** A resource row with its agent's labels: what effective labels and label permissions need. */
export interface ResourceWithLabels {
  row: ResourceRow;
  /** the agent's labels overlaid by the resource's */
  labels: Labels;
}

/**
 * Resources: what agents protect. Label permissions apply to a resource's effective labels, and
 * a change is allowed only when the caller may change the resource both as it is and as it will
 * be (a role limited to `environment=dev` cannot relabel a resource into or out of prod).
 */
@Injectable()
export class ResourceService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService) {
    this.db = db;
    this.access = access;
    this.audit = audit;
  }

  async list(principal: Principal, filter: { agentId?: string | null } = {}): Promise<Resource[]> {
    if (filter.agentId != null) parseInput(z.uuid('must be an agent ID'), filter.agentId);
    const rows = await this.db.readTenant(principal.orgId, (tx) => this.withLabels(tx, principal.orgId, filter.agentId ?? undefined));
    return this.access.filter(principal, 'read', 'Resource', rows.map(asSubject)).map((s) => toResource(s.item));
  }

  async get(principal: Principal, id: string): Promise<Resource> {
    parseInput(z.uuid('must be an ID'), id);
    const [item] = await this.db.readTenant(principal.orgId, (tx) => this.withLabels(tx, principal.orgId, undefined, id));
    if (item == null || this.access.filter(principal, 'read', 'Resource', [asSubject(item)]).length === 0) throw notFound('the resource');
    return toResource(item);
  }

  /** Resources of the tenant with their effective labels (all, one agent's, or one). */
  async withLabels(tx: TenantTx, orgId: string, agentId?: string, id?: string): Promise<ResourceWithLabels[]> {
    const rows = await tx.select({ resource: resources, agentLabels: agents.labels }).from(resources)
      .innerJoin(agents, and(eq(agents.orgId, resources.orgId), eq(agents.id, resources.agentId)))
      .where(and(eq(resources.orgId, orgId), agentId == null ? undefined : eq(resources.agentId, agentId), id == null ? undefined : eq(resources.id, id)))
      .orderBy(asc(resources.name), asc(resources.id));
    return rows.map((r) => ({ row: r.resource, labels: effectiveLabels((r.agentLabels ?? {}) as Labels, (r.resource.labels ?? {}) as Labels) }));
  }

  async create(principal: Principal, input: CreateResourceInput, requestId: string): Promise<Resource> {
    this.access.require(principal, 'create', 'Resource', undefined, requestId);
    const data = parseInput(createResourceSchema, { ...stripNulls(input), labels: labelsFromPairs(input.labels) });
    return this.db.withTenant(principal.orgId, async (tx) => {
      const [agent] = await tx.select({ id: agents.id, labels: agents.labels, status: agents.status }).from(agents).where(and(eq(agents.orgId, principal.orgId), eq(agents.id, data.agentId)));
      if (agent == null) throw fieldError('agentId', 'no such agent in your organization: enroll it first');
      if (agent.status === 'removed') throw fieldError('agentId', 'the agent was removed: choose an active agent');
      const labels = effectiveLabels((agent.labels ?? {}) as Labels, data.labels);
      this.access.require(principal, 'create', 'Resource', [{ labels }], requestId);
      const id = randomUUID();
      const spec = specOf(data.kind, data);
      const [row] = await conflictAs(`a resource named "${data.name}" already exists`, () => tx.insert(resources).values({
        orgId: principal.orgId, id, agentId: data.agentId, name: data.name, kind: data.kind, spec, labels: data.labels,
      }).returning());
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'resource.created', target: `resource:${id}`,
        payload: { agentId: data.agentId, name: data.name, kind: data.kind, spec, labels: data.labels, ...authOf(principal) }, requestId,
      });
      return toResource({ row: row!, labels });
    });
  }

  async update(principal: Principal, input: UpdateResourceInput, requestId: string): Promise<Resource> {
    this.access.require(principal, 'update', 'Resource', undefined, requestId);
    const data = parseInput(updateResourceSchema, { ...stripNulls(input), labels: labelsFromPairs(input.labels) });
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lock(tx, principal.orgId, data.id);
      const spec = existing.row.spec as ResourceSpec;
      let nextSpec: ResourceSpec;
      if ('database' in spec) {
        if (data.paths != null || data.excludes != null) throw fieldError('paths', 'postgres resources take no paths or excludes');
        nextSpec = postgresSpecOf(data, spec);
      } else {
        if (data.database != null) throw fieldError('database', 'only postgres resources name a database');
        for (const key of ['databaseHost', 'databasePort', 'databaseUser'] as const) {
          if (data[key] != null) throw fieldError(key, 'only postgres resources have a database connection');
        }
        nextSpec = { paths: data.paths ?? spec.paths, excludes: data.excludes ?? spec.excludes };
      }
      const ownLabels = data.labels ?? (existing.row.labels as Labels);
      const labels = effectiveLabels(existing.agentLabels, ownLabels);
      this.access.require(principal, 'update', 'Resource', [asSubject(existing), { labels }], requestId);
      const [row] = await conflictAs(`a resource named "${data.name ?? existing.row.name}" already exists`, () => tx.update(resources)
        .set({ name: data.name ?? existing.row.name, spec: nextSpec, labels: ownLabels, updatedAt: new Date() })
        .where(and(eq(resources.orgId, principal.orgId), eq(resources.id, data.id))).returning());
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'resource.updated', target: `resource:${data.id}`,
        payload: { before: auditView(existing.row), after: auditView(row!), ...authOf(principal) }, requestId,
      });
      return toResource({ row: row!, labels });
    });
  }

  async delete(principal: Principal, id: string, requestId: string): Promise<boolean> {
    this.access.require(principal, 'delete', 'Resource', undefined, requestId);
    parseInput(z.uuid('must be an ID'), id);
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lock(tx, principal.orgId, id);
      this.access.require(principal, 'delete', 'Resource', [asSubject(existing)], requestId);
      await conflictAs(`the resource "${existing.row.name}" still has jobs or snapshots referring to it`, () => tx.delete(resources).where(and(eq(resources.orgId, principal.orgId), eq(resources.id, id))));
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'resource.deleted', target: `resource:${id}`, payload: { resource: auditView(existing.row), ...authOf(principal) }, requestId,
      });
      return true;
    });
  }

  private async lock(tx: TenantTx, orgId: string, id: string): Promise<ResourceWithLabels & { agentLabels: Labels }> {
    const [row] = await tx.select().from(resources).where(and(eq(resources.orgId, orgId), eq(resources.id, id))).for('update');
    if (row == null) throw notFound('the resource');
    const [agent] = await tx.select({ labels: agents.labels }).from(agents).where(and(eq(agents.orgId, orgId), eq(agents.id, row.agentId)));
    const agentLabels = (agent?.labels ?? {}) as Labels;
    return { row, agentLabels, labels: effectiveLabels(agentLabels, (row.labels ?? {}) as Labels) };
  }
}

function asSubject(item: ResourceWithLabels): { labels: Labels; item: ResourceWithLabels } {
  return { labels: item.labels, item };
}

function fieldError(path: string, message: string): ControlPlaneError {
  return new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: ${path}: ${message}`, { fields: [{ path, message }] });
}

function stripNulls<T extends object>(input: T): T {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v != null)) as T;
}

function auditView(row: ResourceRow): Record<string, unknown> {
  return { agentId: row.agentId, name: row.name, kind: row.kind, spec: row.spec, labels: row.labels };
}

export function toResource(item: ResourceWithLabels): Resource {
  const { row } = item;
  const spec = row.spec as ResourceSpec;
  return {
    id: row.id, agentId: row.agentId, name: row.name, kind: row.kind,
    paths: 'paths' in spec ? spec.paths : [], excludes: 'excludes' in spec ? spec.excludes : [], database: 'database' in spec ? spec.database : null,
    databaseHost: 'database' in spec ? spec.host ?? null : null, databasePort: 'database' in spec ? spec.port ?? null : null, databaseUser: 'database' in spec ? spec.user ?? null : null,
    labels: labelPairs((row.labels ?? {}) as Labels), effectiveLabels: labelPairs(item.labels), createdAt: row.createdAt, updatedAt: row.updatedAt,
  };
}
