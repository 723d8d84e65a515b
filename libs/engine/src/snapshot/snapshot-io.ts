import { listAll } from '../backend/storage-backend.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { FileKind } from '../format/sealed-file.ts';
import type { Store } from '../store/store.ts';
import { Semaphore } from '../util/semaphore.ts';
import type { Snapshot, SnapshotRecord } from './snapshot.ts';

export async function listSnapshots(store: Store): Promise<SnapshotRecord[]> {
  const objs = await listAll(store.backend, 'snapshots/');
  const sem = new Semaphore(8);
  const out = await Promise.all(
    objs.map((o) =>
      sem.run(async () => ({ id: o.name.slice('snapshots/'.length), snapshot: await store.readSealedFile<Snapshot>(o.name, FileKind.Snapshot) })),
    ),
  );
  return out.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
}

export interface SnapshotFilter {
  /** `latest`, a full ID or a unique prefix */
  ref?: string;
  hostname?: string;
  paths?: string[];
  tags?: string[];
}

/** Snapshots matching the filter, oldest first. With `ref`, exactly one or an error. */
export async function findSnapshots(store: Store, filter: SnapshotFilter): Promise<SnapshotRecord[]> {
  let all = await listSnapshots(store);
  if (filter.hostname) all = all.filter((s) => s.snapshot.hostname === filter.hostname);
  if (filter.paths) {
    const want = [...filter.paths].sort().join('\0');
    all = all.filter((s) => [...s.snapshot.paths].sort().join('\0') === want);
  }
  if (filter.tags && filter.tags.length > 0) all = all.filter((s) => filter.tags!.every((t) => s.snapshot.tags.includes(t)));
  if (!filter.ref) return all;
  if (filter.ref === 'latest') {
    const last = all.at(-1);
    if (!last) throw new ArcaError(ArcaErrorCode.SnapshotNotFound, 'the store has no snapshot yet' + (filter.hostname ? ` for host ${filter.hostname}` : ''), { hint: 'run `arca backup` first' });
    return [last];
  }
  const ref = filter.ref.toLowerCase();
  if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new ArcaError(ArcaErrorCode.InvalidArgument, `"${filter.ref}" is not a snapshot ID`, { hint: 'use `latest`, an ID or an ID prefix from `arca snapshots`' });
  const matches = all.filter((s) => s.id.startsWith(ref));
  if (matches.length === 0) throw new ArcaError(ArcaErrorCode.SnapshotNotFound, `no snapshot ${filter.ref}`, { hint: 'list snapshots with `arca snapshots`' });
  if (matches.length > 1) throw new ArcaError(ArcaErrorCode.AmbiguousSnapshot, `snapshot prefix ${filter.ref} matches ${matches.length} snapshots`, { hint: 'give more characters of the ID' });
  return matches;
}

export async function resolveSnapshot(store: Store, ref: string): Promise<SnapshotRecord> {
  return (await findSnapshots(store, { ref }))[0]!;
}
