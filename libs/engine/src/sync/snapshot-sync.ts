import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { BlobType } from '../format/blob-codec.ts';
import { FileKind } from '../format/sealed-file.ts';
import type { Snapshot, SnapshotRecord } from '../snapshot/snapshot.ts';
import { findSnapshots, listSnapshots } from '../snapshot/snapshot-io.ts';
import { loadTree, saveTree } from '../snapshot/tree-io.ts';
import type { TreeNode } from '../snapshot/tree.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';
import { Semaphore } from '../util/semaphore.ts';
import { CopyMapping } from './copy-mapping.ts';

/**
 * Copy snapshots from one store to another (`arca sync`, the `replicate` job). The two stores have
 * different master keys, so nothing is copied as stored: every blob is read and authenticated
 * under the source's keys and stored again under the destination's (new blob ID = HMAC under the
 * destination's K_mac, new K_blob). Trees are rewritten because they name their content by blob ID.
 *
 * Data blobs are **not** re-chunked with the destination's chunker (as restic's `copy`): the
 * chunks keep the source's boundaries. Re-chunking would mean reassembling every file and running
 * FastCDC over it again, on the main thread, on every sync, for one benefit: deduplication between
 * copies and backups made directly into the destination. A destination that receives copies
 * deduplicates copies among themselves perfectly, which is what replication needs. The boundaries
 * reveal no more than the source store's own blob sizes already do. Restore verification knows that a copied
 * snapshot's chunks come from another chunker (verify/restore-verifier.ts).
 *
 * Safety, as in backup: shared locks on both stores (prune takes an exclusive one); per snapshot,
 * its packs, then the index describing them, then the snapshot; an interrupted or killed sync
 * leaves both stores checkable, and the next sync reuses what the destination's index already
 * has. A copy carries `original` (the ID of the snapshot it copies), which is how a snapshot
 * already copied is recognised and skipped.
 */
export interface SyncOptions {
  /** snapshots of the source (IDs, prefixes or `latest`); default: every snapshot not yet copied */
  snapshots?: string[];
  /** stop after the current blobs: packs and index are written, no snapshot; throws INTERRUPTED */
  signal?: AbortSignal;
  onProgress?: (p: SyncProgress) => void;
}

export interface SyncProgress {
  snapshotsDone: number;
  snapshotsTotal: number;
  /** blobs read from the source and stored in the destination */
  blobsCopied: number;
  /** plaintext bytes of those blobs */
  bytesCopied: number;
  /** the source snapshot being copied */
  current?: string;
}

export interface SyncCopy {
  /** the source snapshot */
  source: string;
  /** the new snapshot in the destination */
  id: string;
  snapshot: Snapshot;
  /** blobs the destination did not have: count and plaintext bytes */
  blobsNew: number;
  bytesNew: number;
  durationMs: number;
}

export interface SyncResult {
  copied: SyncCopy[];
  /** source snapshots that already had a copy in the destination */
  skipped: { source: string; copy: string }[];
  stats: { dataBlobsCopied: number; treeBlobsCopied: number; bytesCopied: number };
}

/** Data blobs read and stored at once: bounds memory (a blob is at most the chunker's maxSize). */
const BLOB_CONCURRENCY = 8;

/** The identity a snapshot carries through copies: its own ID, or its original's if it is a copy. */
export function originalId(record: SnapshotRecord): string {
  return record.snapshot.original ?? record.id;
}

export async function sync(source: Store, dest: Store, options: SyncOptions = {}): Promise<SyncResult> {
  if (source.config.id === dest.config.id) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'the source and the destination are the same store', { hint: 'give another store with --to' });
  }
  const sourceLock = await acquireLock(source, false, 'sync');
  try {
    const destLock = await acquireLock(dest, false, 'sync');
    try {
      await Promise.all([source.loadIndex(), dest.loadIndex()]);
      return await new SyncRunner(source, dest, options).run();
    } finally {
      await destLock.release();
    }
  } finally {
    await sourceLock.release();
  }
}

class SyncRunner {
  private readonly source: Store;
  private readonly dest: Store;
  private readonly options: SyncOptions;
  private readonly mapping: CopyMapping;
  private readonly reads = new Semaphore(BLOB_CONCURRENCY);
  /** data blobs being copied in this run: one read per blob, however many files share it */
  private readonly copying = new Map<string, Promise<string>>();
  private readonly progress: SyncProgress = { snapshotsDone: 0, snapshotsTotal: 0, blobsCopied: 0, bytesCopied: 0 };
  private readonly stats = { dataBlobsCopied: 0, treeBlobsCopied: 0, bytesCopied: 0 };
  private current = { blobs: 0, bytes: 0 };

  constructor(source: Store, dest: Store, options: SyncOptions) {
    this.source = source;
    this.dest = dest;
    this.options = options;
    this.mapping = new CopyMapping(source, dest);
  }

  async run(): Promise<SyncResult> {
    const all = await listSnapshots(this.source);
    const byId = new Map(all.map((r) => [r.id, r]));
    let wanted: SnapshotRecord[] = all;
    if (this.options.snapshots && this.options.snapshots.length > 0) {
      const picked = new Map<string, SnapshotRecord>();
      for (const ref of this.options.snapshots) for (const r of await findSnapshots(this.source, { ref })) picked.set(r.id, r);
      wanted = [...picked.values()].sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
    }
    /** original ID -> the copy in the destination */
    const copies = new Map<string, SnapshotRecord>();
    const existing = await listSnapshots(this.dest);
    for (const r of existing) copies.set(originalId(r), r);
    // a destination snapshot that was copied to the source and comes back is the snapshot itself
    for (const r of existing) if (!copies.has(r.id)) copies.set(r.id, r);

    const result: SyncResult = { copied: [], skipped: [], stats: this.stats };
    const todo: SnapshotRecord[] = [];
    for (const r of wanted) {
      const copy = copies.get(originalId(r));
      if (copy) result.skipped.push({ source: r.id, copy: copy.id });
      else todo.push(r);
    }
    this.progress.snapshotsTotal = todo.length;
    this.report();
    for (const record of todo) {
      this.throwIfAborted();
      const copy = await this.copySnapshot(record, byId, copies);
      copies.set(originalId(record), { id: copy.id, snapshot: copy.snapshot });
      result.copied.push(copy);
      this.progress.snapshotsDone++;
      this.report();
    }
    return result;
  }

  private async copySnapshot(record: SnapshotRecord, byId: Map<string, SnapshotRecord>, copies: Map<string, SnapshotRecord>): Promise<SyncCopy> {
    const started = Date.now();
    this.current = { blobs: 0, bytes: 0 };
    this.progress.current = record.id;
    const parent = record.snapshot.parent ? byId.get(record.snapshot.parent) : undefined;
    const parentCopy = parent ? copies.get(originalId(parent)) : undefined;
    if (parent && parentCopy) await this.mapping.seed(parent.snapshot.tree, parentCopy.snapshot.tree);
    let tree: string;
    try {
      tree = await this.copyTree(record.snapshot.tree);
    } catch (err) {
      // keep what was copied: the next sync finds it in the index and does not copy it again
      await Promise.allSettled([...this.copying.values()]);
      await this.dest.flush().catch(() => undefined);
      throw err;
    }
    // packs and their index before the snapshot that needs them
    await this.dest.flush();
    const { parent: _parent, ...rest } = record.snapshot;
    const snapshot: Snapshot = { ...rest, tree, original: originalId(record) };
    if (parentCopy) snapshot.parent = parentCopy.id;
    const id = await this.dest.writeSealedFile('snapshots', FileKind.Snapshot, snapshot);
    return { source: record.id, id, snapshot, blobsNew: this.current.blobs, bytesNew: this.current.bytes, durationMs: Date.now() - started };
  }

  private throwIfAborted(): void {
    if (this.options.signal?.aborted) {
      throw new ArcaError(ArcaErrorCode.Interrupted, 'sync interrupted', {
        hint: 'everything copied so far is stored and indexed in the destination: run the sync again to continue',
      });
    }
  }

  private report(): void {
    this.options.onProgress?.({ ...this.progress });
  }

  private async copyTree(sourceTree: string): Promise<string> {
    const known = this.mapping.trees.get(sourceTree);
    if (known && this.dest.hasBlob(known)) return known;
    this.throwIfAborted();
    const tree = await loadTree(this.source, sourceTree);
    const contentIds = tree.nodes.flatMap((n) => (n.type === 'file' && n.content ? n.content.filter((id) => !this.mapping.blobs.has(id)) : []));
    // one key request for the whole directory, not one per blob
    if (contentIds.length > 0) this.source.keys.prefetchBlobKeys?.(contentIds.map((id) => Buffer.from(id, 'hex')), 'read');
    // files concurrently (bounded by BLOB_CONCURRENCY), subdirectories one after the other, so a
    // wide tree never has all its subtrees loaded at once
    const files = Promise.all(
      tree.nodes.map(async (node): Promise<TreeNode> => (node.type === 'file' && node.content ? { ...node, content: await Promise.all(node.content.map((id) => this.copyData(id))) } : node)),
    );
    files.catch(() => undefined); // awaited below; a subdirectory's failure must not leave it unhandled
    const subtrees = new Map<number, string>();
    for (const [i, node] of tree.nodes.entries()) if (node.type === 'dir' && node.subtree) subtrees.set(i, await this.copyTree(node.subtree));
    const nodes = (await files).map((node, i) => (subtrees.has(i) ? { ...node, subtree: subtrees.get(i)! } : node));
    // names are unchanged, so the stored order (sorted by raw name) is still the canonical one
    const saved = await saveTree(this.dest, nodes);
    if (saved.isNew) this.stats.treeBlobsCopied++;
    this.mapping.trees.set(sourceTree, saved.id);
    return saved.id;
  }

  private copyData(sourceId: string): Promise<string> {
    const known = this.mapping.blobs.get(sourceId);
    if (known && this.dest.hasBlob(known)) return Promise.resolve(known);
    let pending = this.copying.get(sourceId);
    if (!pending) {
      pending = this.reads.run(async () => {
        this.throwIfAborted();
        const plain = await this.source.readBlob(sourceId, BlobType.Data);
        const saved = await this.dest.saveBlob(BlobType.Data, plain);
        if (saved.isNew) {
          this.stats.dataBlobsCopied++;
          this.stats.bytesCopied += plain.length;
          this.current.blobs++;
          this.current.bytes += plain.length;
          this.progress.blobsCopied++;
          this.progress.bytesCopied += plain.length;
          this.report();
        }
        this.mapping.blobs.set(sourceId, saved.id);
        return saved.id;
      });
      this.copying.set(sourceId, pending);
      void pending.then(
        () => this.copying.delete(sourceId),
        () => this.copying.delete(sourceId),
      );
    }
    return pending;
  }
}
