import { chmodSync, linkSync, lchownSync, lutimesSync, mkdirSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { ArcaError, ArcaErrorCode, fromSystemError } from '../errors/arca-error.ts';
import { packObjectName } from '../format/pack-format.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';
import { findNode, loadTree } from '../snapshot/tree-io.ts';
import { rawName, type TreeNode } from '../snapshot/tree.ts';
import type { SnapshotRecord } from '../snapshot/snapshot.ts';
import { Semaphore } from '../util/semaphore.ts';
import { WorkerPool, WorkerIoError, defaultWorkerCount } from '../util/worker-pool.ts';
import type { RestoreBlob, RestoreRequest, RestoreResponse } from './restore-protocol.ts';

export interface RestoreOptions {
  target: string;
  /** path inside the snapshot; a directory restores its contents into target, a file into target/<name> */
  subPath?: string;
  /** restore owners (default: when running as root) */
  restoreOwners?: boolean;
  workers?: number;
  onProgress?: (p: RestoreProgress) => void;
  onWarning?: (w: { path: string; message: string }) => void;
}

export interface RestoreProgress {
  files: number;
  dirs: number;
  bytes: number;
  currentPath?: string;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  bytes: number;
  warnings: { path: string; message: string }[];
}

/** Files handed to each worker at once: enough to hide the main thread's latency. */
const FILES_PER_WORKER = 6;

/** Restore a snapshot (or a path inside it) into a directory, with content and metadata. */
export async function restore(store: Store, snap: SnapshotRecord, options: RestoreOptions): Promise<RestoreResult> {
  const lock = await acquireLock(store, false, 'restore');
  try {
    await store.loadIndex();
    const restorer = new Restorer(store, options);
    try {
      return await restorer.run(snap);
    } finally {
      await restorer.close();
    }
  } finally {
    await lock.release();
  }
}

const SEP = Buffer.from('/');

class Restorer {
  private readonly store: Store;
  private readonly options: RestoreOptions;
  private readonly pool: WorkerPool<RestoreRequest, RestoreResponse>;
  private readonly slots: Semaphore;
  private readonly hardlinks = new Map<string, Promise<Buffer | undefined>>();
  private readonly dirs: { dest: Buffer; node: TreeNode }[] = [];
  private readonly pending: Promise<void>[] = [];
  private readonly warnings: { path: string; message: string }[] = [];
  private readonly progress: RestoreProgress = { files: 0, dirs: 0, bytes: 0 };
  private readonly owners: boolean;
  private fatal: unknown;

  constructor(store: Store, options: RestoreOptions) {
    this.store = store;
    this.options = options;
    this.owners = options.restoreOwners ?? process.getuid?.() === 0;
    const workers = options.workers ?? defaultWorkerCount();
    this.pool = new WorkerPool(new URL('./restore-worker.ts', import.meta.url), { macKey: store.keys.agentKeys.macKey }, workers);
    this.slots = new Semaphore(workers * FILES_PER_WORKER);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  async run(snap: SnapshotRecord): Promise<RestoreResult> {
    const target = path.resolve(this.options.target);
    const sub = this.options.subPath ?? '/';
    const node = await findNode(this.store, snap.snapshot.tree, sub);
    if (!node) {
      throw new ArcaError(ArcaErrorCode.PathNotFound, `${sub} is not in snapshot ${snap.id.slice(0, 8)}`, { hint: `list it with \`arca ls ${snap.id.slice(0, 8)}\`` });
    }
    try {
      mkdirSync(target, { recursive: true });
    } catch (err) {
      throw fromSystemError(err, target);
    }
    const targetBuf = Buffer.from(target);
    if (node.type === 'dir') {
      await this.restoreDir(node.subtree!, targetBuf);
      if (sub !== '/' && sub !== '') this.dirs.push({ dest: targetBuf, node });
    } else {
      await this.restoreEntry(node, Buffer.concat([targetBuf, SEP, rawName(node)]));
    }
    await Promise.all(this.pending);
    if (this.fatal) throw this.fatal;
    // directories last, deepest first: creating their children changed their mtimes
    for (let i = this.dirs.length - 1; i >= 0; i--) this.applyMetadata(this.dirs[i]!.dest, this.dirs[i]!.node);
    return { ...this.progress, warnings: this.warnings };
  }

  private warn(p: Buffer, err: unknown): void {
    const w = { path: p.toString(), message: err instanceof Error ? err.message : String(err) };
    this.warnings.push(w);
    this.options.onWarning?.(w);
  }

  private async restoreDir(treeId: string, dest: Buffer): Promise<void> {
    const tree = await loadTree(this.store, treeId);
    // a key proxy then sends the keys of the directory's files and subdirectories in one request,
    // instead of one request per file and per tree
    this.store.keys.prefetchBlobKeys?.(
      tree.nodes.flatMap((n) => (n.type === 'file' ? (n.content ?? []) : n.type === 'dir' && n.subtree ? [n.subtree] : []).map((id) => Buffer.from(id, 'hex'))),
      'read',
    );
    for (const node of tree.nodes) {
      if (this.fatal) return;
      await this.restoreEntry(node, Buffer.concat([dest, SEP, rawName(node)]));
    }
  }

  private async restoreEntry(node: TreeNode, dest: Buffer): Promise<void> {
    try {
      switch (node.type) {
        case 'dir':
          mkdirSync(dest, { recursive: true, mode: 0o700 });
          this.dirs.push({ dest, node });
          this.progress.dirs++;
          await this.restoreDir(node.subtree!, dest);
          return;
        case 'file':
          await this.slots.acquire();
          this.track(this.restoreFile(node, dest).finally(() => this.slots.release()), dest);
          return;
        case 'symlink':
          rmSync(dest, { force: true });
          symlinkSync(node.targetRaw ? Buffer.from(node.targetRaw, 'base64') : node.target!, dest);
          this.applyMetadata(dest, node);
          return;
        default:
          this.warn(dest, new Error(`${node.type} entries are recorded but not restored`));
      }
    } catch (err) {
      this.onEntryError(dest, err);
    }
  }

  private track(p: Promise<void>, dest: Buffer): void {
    this.pending.push(p.catch((err: unknown) => this.onEntryError(dest, err)));
  }

  /** A damaged blob or an unwritable file costs that file; a full disk or a store failure stops the restore. */
  private onEntryError(dest: Buffer, err: unknown): void {
    const translated = fromSystemError(err, dest.toString());
    const fatal = (translated instanceof ArcaError && translated.code !== ArcaErrorCode.CorruptObject && translated.code !== ArcaErrorCode.BlobNotFound) || !(translated instanceof ArcaError || translated instanceof WorkerIoError || (translated as NodeJS.ErrnoException).code);
    if (fatal) this.fatal ??= translated;
    else this.warn(dest, translated);
  }

  private async restoreFile(node: TreeNode, dest: Buffer): Promise<void> {
    if (node.links > 1) {
      const key = `${node.dev}:${node.inode}`;
      const first = this.hardlinks.get(key);
      if (first) {
        const firstPath = await first;
        if (firstPath) {
          rmSync(dest, { force: true });
          linkSync(firstPath, dest);
          this.progress.files++;
          return;
        }
      } else {
        const p = this.writeFile(node, dest).then(() => dest);
        this.hardlinks.set(key, p.catch(() => undefined));
        await p;
        return;
      }
    }
    await this.writeFile(node, dest);
  }

  private async writeFile(node: TreeNode, dest: Buffer): Promise<void> {
    const ids = node.content ?? [];
    const idBytes = ids.map((id) => Buffer.from(id, 'hex'));
    const keys = await this.store.keys.blobKeys(idBytes, 'read');
    const blobs: RestoreBlob[] = await Promise.all(
      ids.map(async (id, i) => {
        const entry = this.store.index.get(id);
        if (!entry) throw new ArcaError(ArcaErrorCode.BlobNotFound, `blob ${id.slice(0, 12)} of this file is missing from the store`);
        const name = packObjectName(entry.packId);
        const blob: RestoreBlob = { offset: entry.offset, length: entry.length, id: idBytes[i]!, key: keys[i]!, type: entry.type, encoding: entry.encoding, rawLength: entry.rawLength };
        const local = this.store.backend.localPath?.(name);
        if (local) blob.packPath = local;
        else blob.sealed = await this.store.backend.getRange(name, entry.offset, entry.length);
        return blob;
      }),
    );
    const msg: RestoreRequest = { op: 'writeFile', seq: this.pool.nextSeq(), dest, blobs, meta: this.meta(node) };
    let reply: RestoreResponse;
    try {
      reply = await this.pool.request(this.pool.leastBusy(), msg);
    } catch (err) {
      if (err instanceof WorkerIoError && err.code === 'ARCA_CORRUPT') {
        throw new ArcaError(ArcaErrorCode.CorruptObject, `${err.message}; the file was restored partially`, { hint: 'run `arca check --read-data`' });
      }
      throw err;
    }
    this.progress.files++;
    this.progress.bytes += reply.bytes;
    this.progress.currentPath = dest.toString();
    this.options.onProgress?.(this.progress);
  }

  private meta(node: TreeNode) {
    return { mode: node.mode, uid: node.uid, gid: node.gid, mtimeSec: mtimeSeconds(node), chown: this.owners };
  }

  private applyMetadata(dest: Buffer, node: TreeNode): void {
    const t = mtimeSeconds(node);
    try {
      if (this.owners) lchownSync(dest, node.uid, node.gid);
      if (node.type === 'symlink') {
        lutimesSync(dest, t, t);
        return;
      }
      chmodSync(dest, node.mode);
      utimesSync(dest, t, t);
    } catch (err) {
      this.warn(dest, err);
    }
  }
}

/**
 * utimes takes seconds as a double, whose resolution today is ~0.24 µs, and the kernel truncates.
 * Aim at the middle of the recorded microsecond so the restored time reads back exactly.
 */
function mtimeSeconds(node: TreeNode): number {
  return (Number(BigInt(node.mtimeNs) / 1000n) + 0.5) / 1e6;
}
