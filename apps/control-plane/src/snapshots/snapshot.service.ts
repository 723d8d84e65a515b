import { Inject, Injectable } from '@nestjs/common';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import { snapshots, stores, type Database, type SnapshotRow } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import type { Principal } from '../auth/principal.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { parseInput } from '../errors/input-validation.ts';
import { decodeCursor, encodeCursor, pageSize, toConnection } from '../graphql/relay-pagination.ts';
import type { Labels } from '../policies/label-selector.ts';
import type { Snapshot, SnapshotConnection, SnapshotFilter } from './snapshot.types.ts';

const filterSchema = z.object({
  storeId: z.uuid('must be a store ID').nullish(),
  resourceId: z.uuid('must be a resource ID').nullish(),
  from: z.date().nullish(),
  to: z.date().nullish(),
  includeRemoved: z.boolean().nullish(),
});
const cursorSchema = z.tuple([z.iso.datetime(), z.uuid(), z.string().regex(/^[0-9a-f]{64}$/)]);

/**
 * The snapshot catalog (metadata agents report: sizes and counts, never names or contents),
 * newest first, keyset-paginated on (time, store, snapshot). Readable with read:Store, under the
 * store's label conditions: a snapshot is part of its store.
 */
@Injectable()
export class SnapshotService {
  private readonly db: Database;
  private readonly access: AccessService;

  constructor(@Inject(DATABASE) db: Database, access: AccessService) {
    this.db = db;
    this.access = access;
  }

  async list(principal: Principal, args: { first?: number; after?: string; filter?: SnapshotFilter }): Promise<SnapshotConnection> {
    const limit = pageSize(args.first);
    const f = parseInput(filterSchema, args.filter ?? {});
    const after = args.after == null ? null : decodeCursor(args.after, cursorSchema);
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select({ snapshot: snapshots, storeLabels: stores.labels }).from(snapshots)
      .innerJoin(stores, and(eq(stores.orgId, snapshots.orgId), eq(stores.id, snapshots.storeId)))
      .where(and(
        eq(snapshots.orgId, principal.orgId),
        f.storeId == null ? undefined : eq(snapshots.storeId, f.storeId),
        f.resourceId == null ? undefined : eq(snapshots.resourceId, f.resourceId),
        f.from == null ? undefined : sql`${snapshots.time} >= ${f.from.toISOString()}::timestamptz`,
        f.to == null ? undefined : sql`${snapshots.time} < ${f.to.toISOString()}::timestamptz`,
        f.includeRemoved === true ? undefined : isNull(snapshots.removedAt),
        after == null ? undefined : sql`(${snapshots.time}, ${snapshots.storeId}, ${snapshots.snapshotId}) < (${after[0]}::timestamptz, ${after[1]}::uuid, ${after[2]})`,
      ))
      .orderBy(desc(snapshots.time), desc(snapshots.storeId), desc(snapshots.snapshotId)).limit(limit + 1));
    const visible = this.access.filter(principal, 'read', 'Store', rows.map((r) => ({ labels: (r.storeLabels ?? {}) as Labels, row: r.snapshot })));
    return toConnection(visible.map((v) => v.row), limit, after != null,
      (row) => encodeCursor([row.time.toISOString(), row.storeId, row.snapshotId]), (row, cursor) => ({ cursor, node: toSnapshot(row) }));
  }
}

export function toSnapshot(row: SnapshotRow): Snapshot {
  return {
    storeId: row.storeId, snapshotId: row.snapshotId, resourceId: row.resourceId ?? null, agentId: row.agentId ?? null, jobId: row.jobId ?? null,
    time: row.time, hostname: row.hostname, tags: row.tags ?? [], parent: row.parent ?? null, totalBytes: Number(row.totalBytes), fileCount: Number(row.fileCount),
    dirCount: Number(row.dirCount), newBytes: Number(row.newBytes), storedBytes: Number(row.storedBytes), durationMs: Number(row.durationMs), removedAt: row.removedAt ?? null,
  };
}
