import { BlobType } from '../format/blob-codec.ts';
import { loadTree } from '../snapshot/tree-io.ts';
import { rawName } from '../snapshot/tree.ts';
import type { Store } from '../store/store.ts';

/**
 * Which source blob became which destination blob. Blob IDs are MACs under each store's own K_mac,
 * so the same plaintext has different IDs in the two stores and the mapping cannot be computed
 * without reading the plaintext. Reading every blob of every snapshot again would make each sync
 * as expensive as the first one, so the mapping is seeded from a pair already copied (the parent
 * and its copy): a copy has exactly its original's structure, node for node, with only `content`
 * and `subtree` rewritten, so walking both side by side pairs every tree and data blob.
 */
export class CopyMapping {
  /** source tree ID -> destination tree ID */
  readonly trees = new Map<string, string>();
  /** source data blob ID -> destination data blob ID */
  readonly blobs = new Map<string, string>();
  private readonly seeded = new Set<string>();

  private readonly source: Store;
  private readonly dest: Store;

  constructor(source: Store, dest: Store) {
    this.source = source;
    this.dest = dest;
  }

  /**
   * Learn the mapping from an original snapshot's root tree and its copy's. Pairs that do not line
   * up (a copy that is not ours, a blob the destination no longer has) are ignored: whatever is
   * not mapped is read and copied again, so a wrong guess costs time, never correctness.
   */
  async seed(sourceTree: string, destTree: string): Promise<void> {
    const key = `${sourceTree}:${destTree}`;
    if (this.seeded.has(key)) return;
    this.seeded.add(key);
    await this.pair(sourceTree, destTree);
  }

  private async pair(sourceTree: string, destTree: string): Promise<void> {
    if (this.trees.has(sourceTree) || !this.dest.hasBlob(destTree)) return;
    const [s, d] = await Promise.all([loadTree(this.source, sourceTree), loadTree(this.dest, destTree)]);
    if (s.nodes.length !== d.nodes.length) return;
    const subtrees: [string, string][] = [];
    let complete = true;
    for (let i = 0; i < s.nodes.length; i++) {
      const a = s.nodes[i]!;
      const b = d.nodes[i]!;
      if (a.type !== b.type || !rawName(a).equals(rawName(b))) return;
      if (a.type === 'file' && a.content && b.content && a.content.length === b.content.length) {
        for (let j = 0; j < a.content.length; j++) {
          const to = b.content[j]!;
          const entry = this.dest.index.get(to);
          if (entry && entry.type === BlobType.Data) this.blobs.set(a.content[j]!, to);
          else complete = false;
        }
      } else if (a.type === 'dir' && a.subtree && b.subtree) {
        subtrees.push([a.subtree, b.subtree]);
      } else if ((a.content?.length ?? 0) !== (b.content?.length ?? 0) || Boolean(a.subtree) !== Boolean(b.subtree)) {
        complete = false;
      }
    }
    for (const [from, to] of subtrees) await this.pair(from, to);
    // a tree is mapped only when all it references is: reusing a mapped tree skips its whole subtree
    if (complete && subtrees.every(([from]) => this.trees.has(from))) this.trees.set(sourceTree, destTree);
  }
}
