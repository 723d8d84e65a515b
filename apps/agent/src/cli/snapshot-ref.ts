import path from 'node:path';
import { ArcaError, ArcaErrorCode, findNode, resolveSnapshot, type SnapshotRecord, type Store, type TreeNode } from '@arca/engine';
import { UsageError } from './errors.ts';
import { shortId } from './format.ts';

export interface SnapshotPathRef {
  /** `latest`, a full snapshot ID or a unique prefix */
  ref: string;
  /** absolute path inside the snapshot, or undefined for the whole snapshot */
  path: string | undefined;
}

/** Parse `ID`, `ID:/path` or `latest:/path`. */
export function parseSnapshotPath(arg: string): SnapshotPathRef {
  const colon = arg.indexOf(':');
  const ref = colon < 0 ? arg : arg.slice(0, colon);
  if (ref === '') throw new UsageError(`"${arg}" does not name a snapshot`, 'use ID, ID:/path or latest:/path');
  if (colon < 0) return { ref, path: undefined };
  const raw = arg.slice(colon + 1);
  if (raw === '') return { ref, path: undefined };
  let p = path.posix.normalize(raw.startsWith('/') ? raw : `/${raw}`);
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return { ref, path: p === '/' ? undefined : p };
}

export async function resolveRef(store: Store, ref: string): Promise<SnapshotRecord> {
  return resolveSnapshot(store, ref);
}

/** Resolve `ID[:/path]` to the snapshot and the node at the path (a synthetic root dir without one). */
export async function resolveSnapshotPath(store: Store, arg: string): Promise<{ snap: SnapshotRecord; path: string | undefined; node: TreeNode }> {
  const { ref, path: p } = parseSnapshotPath(arg);
  const snap = await resolveSnapshot(store, ref);
  const node = await findNode(store, snap.snapshot.tree, p ?? '/');
  if (!node) {
    throw new ArcaError(ArcaErrorCode.PathNotFound, `${p} is not in snapshot ${shortId(snap.id)}`, {
      hint: `list its contents with \`arca ls ${shortId(snap.id)}${p ? `:${path.posix.dirname(p)}` : ''}\``,
    });
  }
  return { snap, path: p, node };
}
