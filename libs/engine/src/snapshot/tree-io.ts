import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { BlobType } from '../format/blob-codec.ts';
import type { Store } from '../store/store.ts';
import { canonicalJson } from '../util/canonical-json.ts';
import { rawName, type Tree, type TreeNode } from './tree.ts';

export async function loadTree(store: Store, id: string): Promise<Tree> {
  const bytes = await store.readBlob(id, BlobType.Tree);
  const tree = JSON.parse(bytes.toString('utf8')) as Tree;
  if (tree.version !== 1 || !Array.isArray(tree.nodes)) throw new ArcaError(ArcaErrorCode.CorruptObject, `tree ${id.slice(0, 12)} is not a valid tree`);
  return tree;
}

/** Store a directory's tree (nodes already sorted with sortNodes); `isNew` when the store lacked it. */
export async function saveTree(store: Store, nodes: TreeNode[]): Promise<{ id: string; isNew: boolean }> {
  return store.saveBlob(BlobType.Tree, Buffer.from(canonicalJson({ version: 1, nodes } satisfies Tree)));
}

/** Resolve `/a/b/c` inside a snapshot's root tree. Returns the node and its parent path. */
export async function findNode(store: Store, rootTree: string, target: string): Promise<TreeNode | undefined> {
  const parts = target.split('/').filter(Boolean);
  if (parts.length === 0) return rootNode(rootTree);
  let treeId: string | undefined = rootTree;
  let node: TreeNode | undefined;
  for (const part of parts) {
    if (!treeId) return undefined;
    const tree = await loadTree(store, treeId);
    node = tree.nodes.find((n) => n.name === part || rawName(n).equals(Buffer.from(part)));
    if (!node) return undefined;
    treeId = node.type === 'dir' ? node.subtree : undefined;
  }
  return node;
}

/** A synthetic directory node standing for a snapshot's root. */
export function rootNode(rootTree: string): TreeNode {
  return { name: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: '0', ctimeNs: '0', inode: '0', dev: '0', links: 1, subtree: rootTree };
}

export interface WalkEntry {
  /** path inside the snapshot, starting with `/` (display form) */
  path: string;
  /** raw path bytes relative to the walk root */
  raw: Buffer[];
  node: TreeNode;
}

/** Depth-first walk of a tree, parents before children, in stored (sorted) order. */
export async function* walkTree(store: Store, treeId: string, prefix = '', raw: Buffer[] = []): AsyncGenerator<WalkEntry> {
  const tree = await loadTree(store, treeId);
  for (const node of tree.nodes) {
    const p = `${prefix}/${node.name}`;
    const r = [...raw, rawName(node)];
    yield { path: p, raw: r, node };
    if (node.type === 'dir' && node.subtree) yield* walkTree(store, node.subtree, p, r);
  }
}
