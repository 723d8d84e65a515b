import type { SnapshotRecord } from '../snapshot/snapshot.ts';
import { rawName, type TreeNode } from '../snapshot/tree.ts';
import { loadTree } from '../snapshot/tree-io.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';

export type ChangeKind = 'added' | 'removed' | 'modified' | 'type-changed' | 'metadata';

export interface SnapshotChange {
  change: ChangeKind;
  /** path inside the snapshots, starting with `/` */
  path: string;
  /** the node in the first snapshot (absent for `added`) */
  before?: TreeNode;
  /** the node in the second snapshot (absent for `removed`) */
  after?: TreeNode;
}

export interface DiffStats {
  added: number;
  removed: number;
  modified: number;
  typeChanged: number;
  metadata: number;
  /** of the counts above, how many are files / directories / other entries */
  files: { added: number; removed: number; modified: number };
  dirs: { added: number; removed: number };
  /** sum of file sizes added (added files, and the new size of modified files) */
  bytesAdded: number;
  /** sum of file sizes removed (removed files, and the old size of modified files) */
  bytesRemoved: number;
}

/**
 * Differences from snapshot `a` to snapshot `b`, in path order. Both trees are walked in lockstep
 * and a subtree whose ID is the same on both sides is skipped without being read: the cost is
 * proportional to what changed, not to the size of the snapshots.
 *
 * - added / removed: an entry only in b / only in a; every entry below an added or removed
 *   directory is listed too
 * - type-changed: same name, different type (e.g. file -> symlink); entries below the directory
 *   side are listed as removed / added
 * - modified: a file's content list, a symlink's target or a device's number differs
 * - metadata: only the mode, owner (uid, gid, user, group) or modification time differs; also
 *   reported for a directory whose own metadata changed
 */
export async function* diffSnapshots(store: Store, a: SnapshotRecord, b: SnapshotRecord): AsyncGenerator<SnapshotChange> {
  const lock = await acquireLock(store, false, 'diff');
  try {
    await store.loadIndex();
    if (a.snapshot.tree !== b.snapshot.tree) yield* diffTrees(store, a.snapshot.tree, b.snapshot.tree, '');
  } finally {
    await lock.release();
  }
}

async function* diffTrees(store: Store, treeA: string, treeB: string, prefix: string): AsyncGenerator<SnapshotChange> {
  const [na, nb] = await Promise.all([loadTree(store, treeA), loadTree(store, treeB)]);
  const left = na.nodes;
  const right = nb.nodes;
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    const x = left[i];
    const y = right[j];
    const cmp = x === undefined ? 1 : y === undefined ? -1 : Buffer.compare(rawName(x), rawName(y));
    if (cmp < 0) {
      yield* whole(store, 'removed', x!, `${prefix}/${x!.name}`);
      i++;
    } else if (cmp > 0) {
      yield* whole(store, 'added', y!, `${prefix}/${y!.name}`);
      j++;
    } else {
      yield* diffNodes(store, x!, y!, `${prefix}/${y!.name}`);
      i++;
      j++;
    }
  }
}

async function* diffNodes(store: Store, x: TreeNode, y: TreeNode, path: string): AsyncGenerator<SnapshotChange> {
  if (x.type !== y.type) {
    yield { change: 'type-changed', path, before: x, after: y };
    if (x.type === 'dir' && x.subtree) yield* below(store, 'removed', x.subtree, path);
    if (y.type === 'dir' && y.subtree) yield* below(store, 'added', y.subtree, path);
    return;
  }
  if (contentDiffers(x, y)) yield { change: 'modified', path, before: x, after: y };
  else if (metadataDiffers(x, y)) yield { change: 'metadata', path, before: x, after: y };
  if (x.type === 'dir' && x.subtree !== y.subtree) {
    if (x.subtree && y.subtree) yield* diffTrees(store, x.subtree, y.subtree, path);
    else if (x.subtree) yield* below(store, 'removed', x.subtree, path);
    else if (y.subtree) yield* below(store, 'added', y.subtree, path);
  }
}

function contentDiffers(x: TreeNode, y: TreeNode): boolean {
  switch (x.type) {
    case 'file': {
      const a = x.content ?? [];
      const b = y.content ?? [];
      return a.length !== b.length || a.some((id, k) => id !== b[k]);
    }
    case 'symlink':
      return x.target !== y.target || x.targetRaw !== y.targetRaw;
    case 'chardev':
    case 'blockdev':
      return x.rdev !== y.rdev;
    default:
      return false; // a directory's content is its entries, compared one by one
  }
}

function metadataDiffers(x: TreeNode, y: TreeNode): boolean {
  return x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid || x.user !== y.user || x.group !== y.group || x.mtimeNs !== y.mtimeNs;
}

async function* whole(store: Store, change: 'added' | 'removed', node: TreeNode, path: string): AsyncGenerator<SnapshotChange> {
  yield change === 'added' ? { change, path, after: node } : { change, path, before: node };
  if (node.type === 'dir' && node.subtree) yield* below(store, change, node.subtree, path);
}

async function* below(store: Store, change: 'added' | 'removed', treeId: string, prefix: string): AsyncGenerator<SnapshotChange> {
  for (const node of (await loadTree(store, treeId)).nodes) yield* whole(store, change, node, `${prefix}/${node.name}`);
}

/** Count the changes of a diff (e.g. of `diffSnapshots(...)`, or of changes already collected). */
export async function diffStats(changes: AsyncIterable<SnapshotChange> | Iterable<SnapshotChange>): Promise<DiffStats> {
  const s: DiffStats = {
    added: 0,
    removed: 0,
    modified: 0,
    typeChanged: 0,
    metadata: 0,
    files: { added: 0, removed: 0, modified: 0 },
    dirs: { added: 0, removed: 0 },
    bytesAdded: 0,
    bytesRemoved: 0,
  };
  for await (const c of changes) {
    switch (c.change) {
      case 'added':
        s.added++;
        if (c.after?.type === 'file') {
          s.files.added++;
          s.bytesAdded += c.after.size ?? 0;
        } else if (c.after?.type === 'dir') s.dirs.added++;
        break;
      case 'removed':
        s.removed++;
        if (c.before?.type === 'file') {
          s.files.removed++;
          s.bytesRemoved += c.before.size ?? 0;
        } else if (c.before?.type === 'dir') s.dirs.removed++;
        break;
      case 'modified':
        s.modified++;
        if (c.after?.type === 'file') {
          s.files.modified++;
          s.bytesAdded += c.after.size ?? 0;
          s.bytesRemoved += c.before?.size ?? 0;
        }
        break;
      case 'type-changed':
        s.typeChanged++;
        if (c.before?.type === 'file') s.bytesRemoved += c.before.size ?? 0;
        if (c.after?.type === 'file') s.bytesAdded += c.after.size ?? 0;
        break;
      case 'metadata':
        s.metadata++;
        break;
    }
  }
  return s;
}
