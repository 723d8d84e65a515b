import { Inject, Injectable } from '@nestjs/common';
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import { jwkThumbprint } from '@arca/crypto';
import { agents, jobs, type AgentRow, type Database } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AgentDirectory } from '../agent-api/agent-directory.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { conflictAs, notFound, parseInput } from '../errors/input-validation.ts';
import { decodeCursor, encodeCursor, pageSize, toConnection } from '../graphql/relay-pagination.ts';
import { ACTIVE_JOB_STATUSES, JobQueueService } from '../jobs/job-queue.service.ts';
import { labelPairs, labelsFromPairs, labelsSchema, type Labels } from '../policies/label-selector.ts';
import { visiblePage } from './visible-page.ts';
import type { Agent, AgentConnection, AgentFilter, RekeyAgentInput, UpdateAgentLabelsInput } from './agent.types.ts';

const uuid = z.uuid('must be an ID');
const filterSchema = z.object({
  statuses: z.array(z.enum(['active', 'disabled', 'removed'], 'a status is "active", "disabled" or "removed"')).max(3).nullish(),
  online: z.boolean().nullish(),
  labels: labelsSchema.optional(),
});
const cursorSchema = z.tuple([z.string(), z.uuid()]);
// cursors carry JavaScript's millisecond times; rows are compared at that precision, or the row a
// cursor names (created at .123456) would sort after its own cursor (.123) and come back again
const createdMs = sql`date_trunc('milliseconds', ${agents.createdAt})`;

/**
 * Agents as people manage them (docs/fleet.md §2): the fleet list with online state, labels, and
 * the lifecycle — disable (refused until enabled again), remove (for good: its queued jobs are
 * cancelled, running ones asked to stop), re-key (a new public key replaces the old one; tokens
 * bound to the old key die with their short lifetime). Label conditions apply to the agent as it
 * is and as it will be.
 */
@Injectable()
export class AgentService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly directory: AgentDirectory;
  private readonly queue: JobQueueService;
  private readonly offlineAfterMs: number;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, directory: AgentDirectory, queue: JobQueueService, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.directory = directory;
    this.queue = queue;
    this.offlineAfterMs = config.fleet.offlineAfterMs;
  }

  async list(principal: Principal, args: { first?: number; after?: string; filter?: AgentFilter }): Promise<AgentConnection> {
    const limit = pageSize(args.first);
    const f = parseInput(filterSchema, { ...args.filter, labels: labelsFromPairs(args.filter?.labels) });
    const after = args.after == null ? null : decodeCursor(args.after, cursorSchema);
    const onlineSince = new Date(Date.now() - this.offlineAfterMs).toISOString();
    const visible = await this.db.readTenant(principal.orgId, (tx) => visiblePage(limit, after, (position, count) => tx.select().from(agents).where(and(
      eq(agents.orgId, principal.orgId),
      f.statuses == null ? undefined : inArray(agents.status, f.statuses),
      f.online == null ? undefined : f.online ? sql`${agents.lastSeenAt} >= ${onlineSince}::timestamptz` : sql`(${agents.lastSeenAt} IS NULL OR ${agents.lastSeenAt} < ${onlineSince}::timestamptz)`,
      f.labels == null ? undefined : sql`${agents.labels} @> ${JSON.stringify(f.labels)}::jsonb`,
      position == null ? undefined : sql`(${createdMs}, ${agents.id}) > (${position[0]}::timestamptz, ${position[1]}::uuid)`,
    )).orderBy(asc(createdMs), asc(agents.id)).limit(count), (row): [string, string] => [row.createdAt.toISOString(), row.id], (rows) => this.access.filter(principal, 'read', 'Agent', rows)));
    return toConnection(visible, limit, after != null, (row) => encodeCursor([row.createdAt.toISOString(), row.id]), (row, cursor) => ({ cursor, node: this.toAgent(row) }));
  }

  async get(principal: Principal, id: string): Promise<Agent> {
    parseInput(uuid, id);
    const [row] = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(agents).where(and(eq(agents.orgId, principal.orgId), eq(agents.id, id))));
    if (row == null || this.access.filter(principal, 'read', 'Agent', [row]).length === 0) throw notFound('the agent');
    return this.toAgent(row);
  }

  setStatus(principal: Principal, id: string, status: 'active' | 'disabled', requestId: string): Promise<Agent> {
    return this.change(principal, id, requestId, status === 'active' ? 'agent.enabled' : 'agent.disabled', (row) => {
      if (row.status === 'removed') throw conflict('the agent was removed: enroll the machine again instead');
      return { status };
    });
  }

  async remove(principal: Principal, id: string, requestId: string): Promise<Agent> {
    const agent = await this.change(principal, id, requestId, 'agent.removed', () => ({ status: 'removed' as const }));
    // its work ends visibly: queued jobs cancelled, running ones asked to stop (their lease then runs out)
    const open = await this.db.readTenant(principal.orgId, (tx) => tx.select({ id: jobs.id }).from(jobs)
      .where(and(eq(jobs.orgId, principal.orgId), eq(jobs.agentId, id), inArray(jobs.status, ['queued', ...ACTIVE_JOB_STATUSES]))));
    for (const job of open) await this.queue.cancel(principal.orgId, job.id, `${principal.actor} (agent removed)`);
    return agent;
  }

  updateLabels(principal: Principal, input: UpdateAgentLabelsInput, requestId: string): Promise<Agent> {
    const labels = parseInput(labelsSchema, labelsFromPairs(input.labels) ?? {});
    return this.change(principal, input.id, requestId, 'agent.labels_changed', () => ({ labels }), { labels });
  }

  rekey(principal: Principal, input: RekeyAgentInput, requestId: string): Promise<Agent> {
    const x = parseInput(z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'an Ed25519 public key "x": 43 base64url characters'), input.publicKeyX);
    const keyThumbprint = jwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x });
    return this.change(principal, input.id, requestId, 'agent.rekeyed', (row) => {
      if (row.status === 'removed') throw conflict('the agent was removed: enroll the machine again instead');
      return { publicKeyX: x, keyThumbprint };
    });
  }

  private async change(
    principal: Principal, id: string, requestId: string, action: string,
    /** the columns to change, decided on the row as locked */
    compute: (row: AgentRow) => Partial<Pick<AgentRow, 'status' | 'labels' | 'publicKeyX' | 'keyThumbprint'>>,
    after?: { labels: Labels },
  ): Promise<Agent> {
    this.access.require(principal, 'update', 'Agent', undefined, requestId);
    parseInput(uuid, id);
    const row = await this.db.withTenant(principal.orgId, async (tx) => {
      const [existing] = await tx.select().from(agents).where(and(eq(agents.orgId, principal.orgId), eq(agents.id, id))).for('update');
      if (existing == null || this.access.filter(principal, 'read', 'Agent', [existing]).length === 0) throw notFound('the agent');
      this.access.require(principal, 'update', 'Agent', after == null ? [existing] : [existing, after], requestId);
      const set = compute(existing);
      const [updated] = await conflictAs('another agent of the organization already has this key', () =>
        tx.update(agents).set({ ...set, updatedAt: new Date() }).where(and(eq(agents.orgId, principal.orgId), eq(agents.id, id))).returning());
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action, target: `agent:${id}`,
        payload: { before: auditView(existing), after: auditView(updated!), ...authOf(principal) }, requestId,
      });
      return updated!;
    });
    this.directory.forget(principal.orgId, id);
    return this.toAgent(row);
  }

  private toAgent(row: AgentRow): Agent {
    return {
      id: row.id, name: row.name, status: row.status, online: row.lastSeenAt != null && Date.now() - row.lastSeenAt.getTime() <= this.offlineAfterMs,
      labels: labelPairs(row.labels as Labels), hostname: row.hostname, os: row.os, arch: row.arch, version: row.version, uptimeSeconds: row.uptimeSeconds,
      load: row.load, freeBytes: row.freeBytes, inventory: row.inventory, keyThumbprint: row.keyThumbprint, enrolledWith: row.enrolledWith,
      lastSeenAt: row.lastSeenAt, createdAt: row.createdAt,
    };
  }
}

function conflict(message: string): ControlPlaneError {
  return new ControlPlaneError(ControlPlaneErrorCode.Conflict, message);
}

function auditView(row: AgentRow): Record<string, unknown> {
  return { name: row.name, status: row.status, labels: row.labels, keyThumbprint: row.keyThumbprint, hostname: row.hostname };
}
