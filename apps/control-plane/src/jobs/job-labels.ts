import { and, eq, inArray } from 'drizzle-orm';
import { agents, jobs, resources, stores, type JobRow, type TenantTx } from '@arca/db';
import { effectiveLabels, type Labels } from '../policies/label-selector.ts';

/**
 * The labels label-conditioned Job permissions are checked against: a job about a resource has
 * the resource's effective labels, any other job its store's. Jobs carry no labels of their own,
 * so a role limited to `environment=dev` sees and starts the jobs of dev resources and stores.
 */
export async function jobLabels(tx: TenantTx, orgId: string, rows: readonly JobRow[]): Promise<Map<string, Labels>> {
  const out = new Map<string, Labels>();
  if (rows.length === 0) return out;
  const found = await tx.select({ id: jobs.id, resourceLabels: resources.labels, agentLabels: agents.labels, storeLabels: stores.labels }).from(jobs)
    .leftJoin(resources, and(eq(resources.orgId, jobs.orgId), eq(resources.id, jobs.resourceId)))
    .leftJoin(agents, and(eq(agents.orgId, resources.orgId), eq(agents.id, resources.agentId)))
    .leftJoin(stores, and(eq(stores.orgId, jobs.orgId), eq(stores.id, jobs.storeId)))
    .where(and(eq(jobs.orgId, orgId), inArray(jobs.id, rows.map((r) => r.id))));
  for (const f of found) {
    out.set(f.id, f.resourceLabels != null ? effectiveLabels((f.agentLabels ?? {}) as Labels, f.resourceLabels as Labels) : ((f.storeLabels ?? {}) as Labels));
  }
  return out;
}

/** Rows as CASL subjects: the row's fields plus its labels. */
export function withLabels(rows: readonly JobRow[], labels: ReadonlyMap<string, Labels>): Array<JobRow & { labels: Labels }> {
  return rows.map((row) => ({ ...row, labels: labels.get(row.id) ?? {} }));
}
