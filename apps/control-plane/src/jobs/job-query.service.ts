import { Inject, Injectable } from '@nestjs/common';
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import { z } from 'zod';
import { jobEvents, jobs, type Database, type JobEventRow, type JobRow, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import type { Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { notFound, parseInput } from '../errors/input-validation.ts';
import type { Labels } from '../policies/label-selector.ts';
import { jobLabels, withLabels } from './job-labels.ts';
import { decodeCursor, encodeCursor, pageSize, toConnection } from '../graphql/relay-pagination.ts';
import type { Job, JobConnection, JobEvent, JobFilter } from './job.types.ts';

const uuid = z.uuid('must be an ID');
const filterSchema = z.object({
  statuses: z.array(z.enum(['queued', 'leased', 'running', 'succeeded', 'partial', 'failed', 'cancelled'])).max(10).nullish(),
  kinds: z.array(z.enum(['init', 'backup', 'restore', 'check', 'replicate', 'forget', 'restore-test'])).max(10).nullish(),
  agentId: uuid.nullish(),
  resourceId: uuid.nullish(),
  policyId: uuid.nullish(),
});
const cursorSchema = z.tuple([z.iso.datetime(), z.uuid()]);
const MAX_EVENTS = 1000;

/** Reads of jobs for GraphQL: newest first, keyset-paginated on (created_at, id). */
@Injectable()
export class JobQueryService {
  private readonly db: Database;
  private readonly access: AccessService;

  constructor(@Inject(DATABASE) db: Database, access: AccessService) {
    this.db = db;
    this.access = access;
  }

  async list(principal: Principal, args: { first?: number; after?: string; filter?: JobFilter }): Promise<JobConnection> {
    const limit = pageSize(args.first);
    const f = parseInput(filterSchema, args.filter ?? {});
    const after = args.after == null ? null : decodeCursor(args.after, cursorSchema);
    const rows = await this.db.readTenant(principal.orgId, async (tx) => withLabels(...(await this.labelled(tx, principal.orgId, await tx.select().from(jobs).where(and(
      eq(jobs.orgId, principal.orgId),
      f.statuses == null ? undefined : inArray(jobs.status, f.statuses),
      f.kinds == null ? undefined : inArray(jobs.kind, f.kinds),
      f.agentId == null ? undefined : eq(jobs.agentId, f.agentId),
      f.resourceId == null ? undefined : eq(jobs.resourceId, f.resourceId),
      f.policyId == null ? undefined : eq(jobs.policyId, f.policyId),
      after == null ? undefined : sql`(${jobs.createdAt}, ${jobs.id}) < (${after[0]}::timestamptz, ${after[1]}::uuid)`,
    )).orderBy(desc(jobs.createdAt), desc(jobs.id)).limit(limit + 1)))));
    const visible = this.access.filter(principal, 'read', 'Job', rows);
    return toConnection(visible, limit, after != null, (row) => encodeCursor([row.createdAt.toISOString(), row.id]), (row, cursor) => ({ cursor, node: toJob(row) }));
  }

  async get(principal: Principal, id: string): Promise<Job> {
    parseInput(uuid, id);
    const [row] = await this.db.readTenant(principal.orgId, async (tx) =>
      withLabels(...(await this.labelled(tx, principal.orgId, await tx.select().from(jobs).where(and(eq(jobs.orgId, principal.orgId), eq(jobs.id, id)))))));
    if (row == null || this.access.filter(principal, 'read', 'Job', [row]).length === 0) throw notFound('the job');
    return toJob(row);
  }

  private async labelled(tx: TenantTx, orgId: string, rows: JobRow[]): Promise<[JobRow[], Map<string, Labels>]> {
    return [rows, await jobLabels(tx, orgId, rows)];
  }

  async events(principal: Principal, jobId: string, first: number | undefined): Promise<JobEvent[]> {
    const limit = Math.min(Math.max(first ?? MAX_EVENTS, 1), MAX_EVENTS);
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(jobEvents)
      .where(and(eq(jobEvents.orgId, principal.orgId), eq(jobEvents.jobId, jobId))).orderBy(asc(jobEvents.seq)).limit(limit));
    return rows.map(toJobEvent);
  }
}

export function toJobEvent(row: JobEventRow): JobEvent {
  return { seq: Number(row.seq), time: row.time, kind: row.kind, level: row.level, message: row.message, data: (row.data as Record<string, unknown> | null) ?? null };
}

export function toJob(row: JobRow): Job {
  return {
    id: row.id, kind: row.kind, status: row.status, agentId: row.agentId, storeId: row.storeId ?? null, copyStoreId: row.copyStoreId ?? null,
    resourceId: row.resourceId ?? null, policyId: row.policyId ?? null, scheduledFor: row.scheduledFor ?? null, spec: (row.spec ?? {}) as Record<string, unknown>,
    attempt: row.attempt, maxAttempts: row.maxAttempts, cancelRequested: row.cancelRequested, progress: (row.progress as Record<string, unknown> | null) ?? null,
    result: (row.result as Record<string, unknown> | null) ?? null, error: (row.error as Record<string, unknown> | null) ?? null, requestedBy: row.requestedBy,
    createdAt: row.createdAt, startedAt: row.startedAt ?? null, finishedAt: row.finishedAt ?? null, updatedAt: row.updatedAt,
  };
}
