import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdtemp, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FastCdc } from '../chunker/fastcdc.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { restore } from '../restore/restorer.ts';
import type { SnapshotRecord } from '../snapshot/snapshot.ts';
import { findNode, walkTree } from '../snapshot/tree-io.ts';
import { rawName, type TreeNode } from '../snapshot/tree.ts';
import type { Store } from '../store/store.ts';

/**
 * Restore verification (the `restore-test` job): restore a snapshot, or a path in it, into a
 * scratch directory, then read every restored regular file back, cut it with the store's chunker,
 * MAC every chunk with K_mac and compare the blob IDs and the size with the file's content list in
 * the tree. This proves the whole chain — packs, index, keys, decryption, the restorer writing
 * the right bytes to the right place — not just that the blobs authenticate (`check --read-data`).
 *
 * A snapshot copied by `sync` keeps its source's chunk boundaries (sync/snapshot-sync.ts), so the
 * store's own chunker cuts its files elsewhere. For those snapshots a file whose re-chunked IDs
 * differ is checked again, cut at the recorded blobs' lengths: equal MACs there prove the same
 * bytes just as well.
 */
export interface VerifyRestoreOptions {
  /** path inside the snapshot (default: all of it) */
  subPath?: string;
  /** where to create the scratch directory (default: the OS temp directory) */
  scratchParent?: string;
  /** keep the scratch directory (for a test that alters a restored file before the comparison) */
  keepScratch?: boolean;
  workers?: number;
  signal?: AbortSignal;
  /** called between restoring and comparing, with the scratch directory (tests use it) */
  beforeCompare?: (scratch: string) => Promise<void> | void;
  onProgress?: (p: VerifyProgress) => void;
}

export interface VerifyProgress {
  phase: 'restore' | 'compare';
  files: number;
  bytes: number;
}

export interface VerifyMismatch {
  /** path inside the snapshot */
  path: string;
  reason: string;
}

export interface VerifyRestoreResult {
  snapshot: string;
  /** regular files compared, and their bytes */
  files: number;
  bytes: number;
  mismatches: VerifyMismatch[];
  scratch?: string;
  durationMs: number;
}

const READ_BYTES = 4 * 1024 * 1024;

export async function verifyRestore(store: Store, snap: SnapshotRecord, options: VerifyRestoreOptions = {}): Promise<VerifyRestoreResult> {
  const started = Date.now();
  const subPath = options.subPath ?? '/';
  const node = await findNode(store, snap.snapshot.tree, subPath);
  if (!node) throw new ArcaError(ArcaErrorCode.PathNotFound, `${subPath} is not in snapshot ${snap.id.slice(0, 8)}`, { hint: 'list its paths with `arca ls`' });
  const scratch = await mkdtemp(path.join(options.scratchParent ?? os.tmpdir(), 'arca-restore-test-'));
  const mismatches: VerifyMismatch[] = [];
  const progress: VerifyProgress = { phase: 'restore', files: 0, bytes: 0 };
  try {
    const restored = await restore(store, snap, {
      target: scratch,
      ...(subPath !== '/' ? { subPath } : {}),
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
      // owners are not compared, and a scratch copy must stay readable by this process
      restoreOwners: false,
      onProgress: (p) => options.onProgress?.({ phase: 'restore', files: p.files, bytes: p.bytes }),
    });
    for (const w of restored.warnings) mismatches.push({ path: w.path, reason: `not restored: ${w.message}` });
    await options.beforeCompare?.(scratch);
    const comparer = new FileComparer(store, snap.snapshot.original !== undefined);
    progress.phase = 'compare';
    const check = async (snapshotPath: string, file: Buffer, n: TreeNode) => {
      if (options.signal?.aborted) throw new ArcaError(ArcaErrorCode.Interrupted, 'restore test interrupted');
      if (restored.warnings.some((w) => w.path === snapshotPath)) return;
      const reason = await comparer.compare(file, n);
      progress.files++;
      progress.bytes += n.size ?? 0;
      options.onProgress?.({ ...progress });
      if (reason) mismatches.push({ path: snapshotPath, reason });
    };
    if (node.type === 'file') {
      await check(subPath, Buffer.concat([Buffer.from(`${scratch}/`), rawName(node)]), node);
    } else if (node.type === 'dir' && node.subtree) {
      const prefix = subPath === '/' ? '' : subPath.replace(/\/+$/, '');
      for await (const entry of walkTree(store, node.subtree, prefix)) {
        if (entry.node.type !== 'file') continue;
        // raw name bytes, as the restorer wrote them (names need not be UTF-8)
        const file = Buffer.concat([Buffer.from(scratch), ...entry.raw.flatMap((r) => [Buffer.from('/'), r])]);
        await check(entry.path, file, entry.node);
      }
    }
    return {
      snapshot: snap.id,
      files: progress.files,
      bytes: progress.bytes,
      mismatches,
      ...(options.keepScratch ? { scratch } : {}),
      durationMs: Date.now() - started,
    };
  } finally {
    if (!options.keepScratch) await removeScratch(scratch);
  }
}

/** Remove the scratch copy, even where the snapshot restored directories without write permission. */
async function removeScratch(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch {
    const unlock = async (d: string) => {
      await chmod(d, 0o700).catch(() => undefined);
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await unlock(path.join(d, e.name));
    };
    await unlock(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

class FileComparer {
  private readonly store: Store;
  private readonly chunker: FastCdc;
  private readonly copied: boolean;
  private readonly buffer: Buffer;

  constructor(store: Store, copied: boolean) {
    this.store = store;
    this.copied = copied;
    this.chunker = new FastCdc(store.keys.agentKeys.chunkerKey, store.config.chunker);
    this.buffer = Buffer.allocUnsafe(Math.max(READ_BYTES, 2 * store.config.chunker.maxSize));
  }

  /** Why the restored file does not match its tree node, or undefined when it does. */
  async compare(file: string | Buffer, node: TreeNode): Promise<string | undefined> {
    let st: Stats;
    try {
      st = await lstat(file);
    } catch (err) {
      return `missing from the restore (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`;
    }
    if (!st.isFile()) return 'restored as something other than a regular file';
    const expected = node.content ?? [];
    if (st.size !== (node.size ?? 0)) return `size ${st.size} differs from the snapshot's ${node.size ?? 0}`;
    const ids = await this.chunkIds(file, st);
    if (typeof ids === 'string') return ids;
    if (sameList(ids, expected)) return undefined;
    if (this.copied) {
      const byLengths = await this.idsAtRecordedLengths(file, st, expected);
      if (typeof byLengths === 'string') return byLengths;
      if (sameList(byLengths, expected)) return undefined;
    }
    const at = ids.findIndex((id, i) => id !== expected[i]);
    return `content differs from the snapshot (chunk ${at === -1 ? Math.min(ids.length, expected.length) : at} of ${expected.length})`;
  }

  private async withFile<T>(file: string | Buffer, st: Stats, read: (handle: FileHandle) => Promise<T>): Promise<T | string> {
    let handle: FileHandle;
    try {
      handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EACCES') return `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
      // restored with a mode that forbids reading (e.g. 0000): the scratch copy is ours to read
      await chmod(file, (st.mode & 0o7777) | 0o400).catch(() => undefined);
      try {
        handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (err2) {
        return `cannot be read (${(err2 as NodeJS.ErrnoException).code ?? 'error'})`;
      }
    }
    try {
      return await read(handle);
    } finally {
      await handle.close();
    }
  }

  /** The file cut by the store's chunker, each chunk MACed: what a backup would have stored. */
  private chunkIds(file: string | Buffer, st: Stats): Promise<string[] | string> {
    return this.withFile(file, st, async (handle) => {
      const ids: string[] = [];
      const buf = this.buffer;
      const max = this.store.config.chunker.maxSize;
      let start = 0;
      let end = 0;
      let eof = false;
      for (;;) {
        // keep at least maxSize bytes ahead (or all that is left): a cut is then final
        if (!eof && end - start < max) {
          buf.copy(buf, 0, start, end);
          end -= start;
          start = 0;
          while (!eof && end < buf.length) {
            const { bytesRead } = await handle.read(buf, end, buf.length - end, null);
            if (bytesRead === 0) eof = true;
            end += bytesRead;
          }
        }
        if (start >= end) break;
        const len = this.chunker.nextChunkLength(buf, start, end);
        ids.push(this.store.blobId(buf.subarray(start, start + len)).toString('hex'));
        start += len;
      }
      return ids;
    });
  }

  /** The file cut at the lengths of the blobs its node lists (for snapshots copied from another store). */
  private idsAtRecordedLengths(file: string | Buffer, st: Stats, expected: string[]): Promise<string[] | string> {
    return this.withFile(file, st, async (handle) => {
      const ids: string[] = [];
      let position = 0;
      for (const id of expected) {
        const entry = this.store.index.get(id);
        if (!entry) return `blob ${id.slice(0, 12)} of this file is not in the index`;
        const chunk = Buffer.allocUnsafe(entry.rawLength);
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        position += bytesRead;
        ids.push(this.store.blobId(chunk.subarray(0, bytesRead)).toString('hex'));
      }
      return ids;
    });
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
