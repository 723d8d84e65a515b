import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import type { SnapshotRecord } from '../snapshot/snapshot.ts';
import type { TreeNode } from '../snapshot/tree.ts';
import { loadTree } from '../snapshot/tree-io.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';
import { compileGlob } from './glob.ts';

export interface FindMatch {
  snapshot: SnapshotRecord;
  /** path inside the snapshot, starting with `/` */
  path: string;
  node: TreeNode;
}

interface Matcher {
  /** matched against the full path (`/a/b/c`) instead of the base name */
  full: boolean;
  re: RegExp;
}

/**
 * Compile find patterns. A pattern without `/` matches the base name at any depth. A pattern with a
 * `/` matches the full path: anchored at the snapshot root when it starts with `/`, otherwise at any
 * depth (`docs/*.md` matches `/home/me/docs/a.md`), like restic's patterns.
 */
export function compileFindPatterns(patterns: string[]): Matcher[] {
  if (patterns.length === 0) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'give at least one pattern to find');
  return patterns.map((p) => {
    if (p === '') throw new ArcaError(ArcaErrorCode.InvalidArgument, 'an empty pattern matches nothing');
    if (!p.includes('/')) return { full: false, re: compileGlob(p) };
    const trimmed = p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
    return { full: true, re: compileGlob(trimmed.startsWith('/') ? trimmed : `/**/${trimmed}`) };
  });
}

/**
 * Every node of the given snapshots whose name (or path, see compileFindPatterns) matches one of the
 * patterns, snapshot by snapshot in the given order, each in depth-first tree order.
 *
 * When every pattern is a base-name pattern, the matches below a tree do not depend on where the
 * tree sits, so they are computed once per tree ID and reused: an unchanged directory shared by many
 * snapshots is read once.
 */
export async function* findInSnapshots(store: Store, patterns: string[], snapshots: SnapshotRecord[]): AsyncGenerator<FindMatch> {
  const matchers = compileFindPatterns(patterns);
  const nameOnly = matchers.every((m) => !m.full);
  const cache = new Map<string, { rel: string; node: TreeNode }[]>();

  const matches = (path: string, name: string) => matchers.some((m) => m.re.test(m.full ? path : name));

  /** Matches below a tree, with paths relative to it (`/x/y`), cached by tree ID. */
  const relMatches = async (treeId: string): Promise<{ rel: string; node: TreeNode }[]> => {
    const hit = cache.get(treeId);
    if (hit) return hit;
    const out: { rel: string; node: TreeNode }[] = [];
    for (const node of (await loadTree(store, treeId)).nodes) {
      const rel = `/${node.name}`;
      if (matches(rel, node.name)) out.push({ rel, node });
      if (node.type === 'dir' && node.subtree) for (const m of await relMatches(node.subtree)) out.push({ rel: rel + m.rel, node: m.node });
    }
    cache.set(treeId, out);
    return out;
  };

  async function* walk(treeId: string, prefix: string): AsyncGenerator<{ path: string; node: TreeNode }> {
    for (const node of (await loadTree(store, treeId)).nodes) {
      const path = `${prefix}/${node.name}`;
      if (matches(path, node.name)) yield { path, node };
      if (node.type === 'dir' && node.subtree) yield* walk(node.subtree, path);
    }
  }

  const lock = await acquireLock(store, false, 'find');
  try {
    await store.loadIndex();
    for (const snapshot of snapshots) {
      if (nameOnly) {
        for (const m of await relMatches(snapshot.snapshot.tree)) yield { snapshot, path: m.rel, node: m.node };
      } else {
        for await (const m of walk(snapshot.snapshot.tree, '')) yield { snapshot, path: m.path, node: m.node };
      }
    }
  } finally {
    await lock.release();
  }
}
