import { chmod, lchown, link, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { ArcaError, ArcaErrorCode, fromSystemError } from '../errors/arca-error.ts';
import { BlobType } from '../format/blob-codec.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';
import { findNode, loadTree } from '../snapshot/tree-io.ts';
import { rawName, type TreeNode } from '../snapshot/tree.ts';
import type { SnapshotRecord } from '../snapshot/snapshot.ts';
import { Semaphore } from '../util/semaphore.ts';

export interface RestoreOptions {
  target: string;
  /** path inside the snapshot; a directory restores its contents into target, a file into target/<name> */
  subPath?: string;
  /** restore owners (default: when running as root) */
  restoreOwners?: boolean;
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

const FILES_IN_FLIGHT = 8;

/** Restore a snapshot (or a path inside it) into a directory, with content and metadata. */
export async function restore(store: Store, snap: SnapshotRecord, options: RestoreOptions): Promise<RestoreResult> {
  const lock = await acquireLock(store, false, 'restore');
  try {
    await store.loadIndex();
    return await new Restorer(store, options).run(snap);
  } finally {
    await lock.release();
  }
}

class Restorer {
  private readonly store: Store;
  private readonly options: RestoreOptions;
  private readonly slots = new Semaphore(FILES_IN_FLIGHT);
  private readonly hardlinks = new Map<string, Promise<Buffer | undefined>>();
  private readonly warnings: { path: string; message: string }[] = [];
  private readonly progress: RestoreProgress = { files: 0, dirs: 0, bytes: 0 };
  private readonly owners: boolean;
  private fatal: unknown;

  constructor(store: Store, options: RestoreOptions) {
    this.store = store;
    this.options = options;
    this.owners = options.restoreOwners ?? process.getuid?.() === 0;
  }

  async run(snap: SnapshotRecord): Promise<RestoreResult> {
    const target = path.resolve(this.options.target);
    const sub = this.options.subPath ?? '/';
    const node = await findNode(this.store, snap.snapshot.tree, sub);
    if (!node) throw new ArcaError(ArcaErrorCode.PathNotFound, `${sub} is not in snapshot ${snap.id.slice(0, 8)}`, { hint: `list it with \`arca ls ${snap.id.slice(0, 8)}\`` });
    await mkdir(target, { recursive: true });
    if (node.type === 'dir') {
      await this.restoreDir(node.subtree!, Buffer.from(target));
      if (sub !== '/' && sub !== '') await this.applyMetadata(Buffer.from(target), node);
    } else {
      await this.restoreEntry(node, Buffer.concat([Buffer.from(target), Buffer.from('/'), rawName(node)]));
    }
    if (this.fatal) throw this.fatal;
    return { ...this.progress, warnings: this.warnings };
  }

  private warn(p: Buffer, err: unknown): void {
    const w = { path: p.toString(), message: err instanceof Error ? err.message : String(err) };
    this.warnings.push(w);
    this.options.onWarning?.(w);
  }

  private async restoreDir(treeId: string, dest: Buffer): Promise<void> {
    const tree = await loadTree(this.store, treeId);
    const pending: Promise<void>[] = [];
    for (const node of tree.nodes) {
      if (this.fatal) break;
      const child = Buffer.concat([dest, Buffer.from('/'), rawName(node)]);
      if (node.type === 'dir') {
        pending.push(this.restoreEntry(node, child));
      } else {
        await this.slots.acquire();
        const p = this.restoreEntry(node, child).finally(() => this.slots.release());
        p.catch(() => undefined);
        pending.push(p);
      }
    }
    await Promise.all(pending);
  }

  private async restoreEntry(node: TreeNode, dest: Buffer): Promise<void> {
    try {
      switch (node.type) {
        case 'dir':
          await mkdir(dest, { recursive: true, mode: 0o700 });
          await this.restoreDir(node.subtree!, dest);
          await this.applyMetadata(dest, node);
          this.progress.dirs++;
          return;
        case 'file':
          await this.restoreFile(node, dest);
          return;
        case 'symlink':
          await rm(dest, { force: true });
          await symlink(node.targetRaw ? Buffer.from(node.targetRaw, 'base64') : node.target!, dest);
          await this.applyMetadata(dest, node);
          return;
        default:
          this.warn(dest, new Error(`${node.type} entries are recorded but not restored`));
      }
    } catch (err) {
      if (err instanceof ArcaError && err.code !== ArcaErrorCode.CorruptObject && err.code !== ArcaErrorCode.BlobNotFound) {
        this.fatal ??= err;
        throw err;
      }
      const translated = fromSystemError(err, dest.toString());
      if (translated instanceof ArcaError && translated.code === ArcaErrorCode.NoSpace) {
        this.fatal ??= translated;
        throw translated;
      }
      this.warn(dest, err);
    }
  }

  private async restoreFile(node: TreeNode, dest: Buffer): Promise<void> {
    if (node.links > 1) {
      const key = `${node.dev}:${node.inode}`;
      const first = this.hardlinks.get(key);
      if (first) {
        const firstPath = await first;
        if (firstPath) {
          await rm(dest, { force: true });
          await link(firstPath, dest);
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
    await rm(dest, { force: true });
    const fh = await open(dest, 'wx', 0o600);
    try {
      let pos = 0;
      // read one blob ahead so decryption overlaps the write
      const ids = node.content ?? [];
      let next = ids.length > 0 ? this.store.readBlob(ids[0]!, BlobType.Data) : undefined;
      for (let i = 0; i < ids.length; i++) {
        const data = await next!;
        next = i + 1 < ids.length ? this.store.readBlob(ids[i + 1]!, BlobType.Data) : undefined;
        next?.catch(() => undefined);
        let written = 0;
        while (written < data.length) {
          const { bytesWritten } = await fh.write(data, written, data.length - written, pos + written);
          written += bytesWritten;
        }
        pos += data.length;
        this.progress.bytes += data.length;
      }
    } finally {
      await fh.close();
    }
    await this.applyMetadata(dest, node);
    this.progress.files++;
    this.progress.currentPath = dest.toString();
    this.options.onProgress?.(this.progress);
  }

  private async applyMetadata(dest: Buffer, node: TreeNode): Promise<void> {
    const seconds = Number(BigInt(node.mtimeNs) / 1000n) / 1e6;
    if (node.type === 'symlink') {
      if (this.owners) await lchown(dest, node.uid, node.gid).catch((err: unknown) => this.warn(dest, err));
      await lutimes(dest, seconds, seconds).catch(() => undefined);
      return;
    }
    if (this.owners) await lchown(dest, node.uid, node.gid).catch((err: unknown) => this.warn(dest, err));
    await chmod(dest, node.mode);
    await utimes(dest, seconds, seconds);
  }
}
