import { lstatSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { BlobType } from '../format/blob-codec.ts';
import { FileKind } from '../format/sealed-file.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';
import type { BackupSummary, Snapshot } from '../snapshot/snapshot.ts';
import { encodeName, rawName, sortNodes, type TreeNode } from '../snapshot/tree.ts';
import { loadTree, saveTree } from '../snapshot/tree-io.ts';
import { findSnapshots } from '../snapshot/snapshot-io.ts';
import { Semaphore } from '../util/semaphore.ts';
import { ByteBudget } from '../util/byte-budget.ts';
import { ENGINE_VERSION } from '../version.ts';
import { BlobWorkerPool, type HashedBatch } from './blob-worker-pool.ts';
import { WorkerIoError } from '../util/worker-pool.ts';
import { ExcludeRules } from './exclude-rules.ts';
import { nodeFromStat } from './node-from-stat.ts';
import { UserNames } from './user-names.ts';
import { PreviousChunks } from './previous-chunks.ts';
import { currentUserName } from '../util/os-user.ts';

/** What every backup takes, whatever its source. */
export interface BackupCommonOptions {
  tags?: string[];
  hostname?: string;
  /** parent snapshot ID; default: the latest snapshot of the same host and paths */
  parent?: string;
  workers?: number;
  /**
   * Stop early: dispatching stops, work in flight finishes, and the packs and index for everything
   * already read are written (so the next backup reuses it); then ArcaError(INTERRUPTED) is thrown.
   */
  signal?: AbortSignal;
  onProgress?: (p: BackupProgress) => void;
  onWarning?: (w: BackupWarning) => void;
}

/** A backup of files and directories. */
export interface BackupOptions extends BackupCommonOptions {
  paths: string[];
  excludes?: string[];
  excludeFiles?: string[];
  oneFileSystem?: boolean;
  /** read every file, even those unchanged since the parent snapshot (which is still recorded) */
  force?: boolean;
}

/**
 * A backup of one byte stream (stdin, a command's stdout, a database dump): the snapshot holds one
 * file at `path`, mode 0600, owned by this process's uid/gid, modified now, in directories (0700)
 * that exist only in the snapshot. Its content goes through the same chunking, deduplication,
 * compression and encryption as any file; the snapshot's `paths` are `[path]`, so the parent is
 * the latest snapshot of the same host and stream name, whose chunks speed up the chunking.
 */
export interface StreamBackupOptions extends BackupCommonOptions {
  /** where the stream is recorded, e.g. `/postgres/orders.dump` (a relative name is put under `/`) */
  path: string;
  stream: AsyncIterable<Uint8Array>;
  /**
   * Awaited once the stream has ended and its content is stored, before the snapshot is written:
   * throwing here (a dump command that exited non-zero) fails the backup and writes no snapshot.
   */
  finished?: () => Promise<void>;
}

export interface BackupProgress {
  files: number;
  dirs: number;
  /** bytes of files finished, read or unchanged */
  bytesDone: number;
  bytesRead: number;
  bytesStored: number;
  currentPath?: string;
}

export interface BackupWarning {
  path: string;
  message: string;
}

export interface BackupResult {
  id: string;
  snapshot: Snapshot;
  warnings: BackupWarning[];
}

/** Files dispatched and not finished: bounds memory for tree nodes and promises. */
const MAX_FILES_IN_FLIGHT = 1024;
/** File content held in workers, not yet sealed. */
const MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
/** Small files are sent to a worker in batches, to keep per-message costs off the main thread. */
const SMALL_BATCH_FILES = 64;
const SMALL_BATCH_BYTES = 4 * 1024 * 1024;

/** Snapshot one or more paths into a store. */
export async function backup(store: Store, options: BackupOptions): Promise<BackupResult> {
  if (options.paths.length === 0) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'nothing to back up: give at least one path');
  const lock = await acquireLock(store, false, 'backup');
  try {
    return await new BackupRunner(store, options).run();
  } finally {
    await lock.release();
  }
}

/** Snapshot one byte stream into a store, as one file (see StreamBackupOptions). */
export async function backupStream(store: Store, options: StreamBackupOptions): Promise<BackupResult> {
  const streamPath = streamSourcePath(options.path);
  const lock = await acquireLock(store, false, 'backup');
  try {
    return await new BackupRunner(store, { ...options, path: streamPath }).run();
  } finally {
    await lock.release();
  }
}

/** The absolute, normalised path a stream is recorded at; refuses empty names, `.` and `..`. */
export function streamSourcePath(name: string): string {
  const parts = name.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..') || name.includes('\0')) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `"${name}" cannot name a backed-up stream`, {
      hint: 'give a file name such as db.dump or postgres/orders.dump (no empty, "." or ".." components)',
    });
  }
  return `/${parts.join('/')}`;
}

interface PathTrie {
  children: Map<string, PathTrie>;
  selected: boolean;
}

interface SmallBatch {
  paths: Buffer[];
  bytes: number;
  waiters: { resolve: (ids: string[]) => void; reject: (err: unknown) => void }[];
}

/** Work that has been started: `done` settles when it completes. */
interface Dispatched<T> {
  done: Promise<T>;
}

class BackupRunner {
  private readonly store: Store;
  private readonly options: BackupOptions | StreamBackupOptions;
  private readonly excludes: ExcludeRules;
  private readonly names = new UserNames();
  private readonly fileSlots = new Semaphore(MAX_FILES_IN_FLIGHT);
  private readonly budget = new ByteBudget(MAX_BYTES_IN_FLIGHT);
  private workerPool: BlobWorkerPool | undefined;

  /** Worker threads start on first use: a backup with nothing to read never spawns them. */
  private get pool(): BlobWorkerPool {
    const { agentKeys } = this.store.keys;
    this.workerPool ??= new BlobWorkerPool(
      { macKey: agentKeys.macKey, chunkerKey: agentKeys.chunkerKey, chunkerParams: this.store.config.chunker, zstdLevel: this.store.config.compression.level },
      this.options.workers,
    );
    return this.workerPool;
  }
  private readonly warnings: BackupWarning[] = [];
  private readonly hardlinks = new Map<string, Promise<string[] | undefined>>();
  private small: SmallBatch = { paths: [], bytes: 0, waiters: [] };
  private fatal: unknown;
  /** batches being hashed, sealed and packed: awaited before an interrupted backup writes its index */
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly progress: BackupProgress = { files: 0, dirs: 0, bytesDone: 0, bytesRead: 0, bytesStored: 0 };
  private readonly stats: BackupSummary = {
    filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, skipped: 0, dataBlobsNew: 0, treeBlobsNew: 0,
    bytesRead: 0, bytesTotal: 0, bytesNew: 0, bytesStored: 0, durationMs: 0,
  };
  private readonly segmentSize: number;
  private readonly smallFileLimit: number;

  constructor(store: Store, options: BackupOptions | StreamBackupOptions) {
    this.store = store;
    this.options = options;
    this.excludes = 'paths' in options ? new ExcludeRules(options.excludes, options.excludeFiles) : new ExcludeRules();
    this.segmentSize = Math.max(16 * 1024 * 1024, 2 * store.config.chunker.maxSize);
    this.smallFileLimit = store.config.chunker.maxSize;
  }

  async run(): Promise<BackupResult> {
    const started = Date.now();
    const options = this.options;
    const paths = 'paths' in options ? [...new Set(options.paths.map(canonicalSourcePath))].sort() : [options.path];
    await this.store.loadIndex();
    const hostname = this.options.hostname ?? os.hostname();
    // --force still records the parent (for diffs and statistics); it only stops files being reused
    const parent = await this.findParent(hostname, paths);
    let rootTree: string;
    const onAbort = () => {
      this.fatal ??= new ArcaError(ArcaErrorCode.Interrupted, 'backup interrupted', {
        hint: 'everything read so far is stored and indexed: run the backup again to continue',
      });
    };
    this.options.signal?.addEventListener('abort', onAbort);
    if (this.options.signal?.aborted) onAbort();
    try {
      const trie = buildTrie(paths);
      if (!('paths' in options)) {
        rootTree = await this.saveStream(options, parent?.snapshot.tree);
      } else if (trie.selected) {
        // backing up `/` itself: the root directory is the snapshot's root tree
        const root = await this.dispatchDir(Buffer.from('/'), parent?.snapshot.tree, lstatSync('/', { bigint: true }).dev);
        this.flushSmallBatch();
        const id = await root.done;
        if (id === undefined) throw new ArcaError(ArcaErrorCode.SourceNotFound, 'cannot read /');
        rootTree = id;
      } else {
        rootTree = await this.saveVirtualDir('/', trie, parent?.snapshot.tree);
      }
      if (this.fatal) throw this.fatal;
      await this.store.flush();
    } catch (err) {
      if (this.fatal instanceof ArcaError && this.fatal.code === ArcaErrorCode.Interrupted) {
        await this.keepWorkDone();
        throw this.fatal;
      }
      throw err;
    } finally {
      this.options.signal?.removeEventListener('abort', onAbort);
      await this.workerPool?.close();
    }
    this.stats.durationMs = Date.now() - started;
    this.stats.skipped = this.warnings.length;
    const snapshot: Snapshot = {
      version: 1,
      time: new Date(started).toISOString(),
      tree: rootTree,
      paths,
      hostname,
      username: currentUserName(),
      tags: this.options.tags ?? [],
      programVersion: ENGINE_VERSION,
      summary: this.stats,
    };
    if (parent) snapshot.parent = parent.id;
    if (!this.excludes.empty) snapshot.excludes = this.excludes.patterns;
    const id = await this.store.writeSealedFile('snapshots', FileKind.Snapshot, snapshot);
    return { id, snapshot, warnings: this.warnings };
  }

  /** After an interruption: let batches in flight finish, then write their packs and index. */
  private async keepWorkDone(): Promise<void> {
    for (const w of this.small.waiters) w.reject(this.fatal);
    this.small = { paths: [], bytes: 0, waiters: [] };
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    await this.store.flush();
  }

  /**
   * A stream backup's tree: the file (content read from the stream) in directories that exist only
   * in the snapshot. The source's `finished` check runs before any tree is saved.
   */
  private async saveStream(options: StreamBackupOptions, parentTree: string | undefined): Promise<string> {
    const parts = options.path.split('/').filter(Boolean);
    // the parent snapshot's version of the stream (same host and name): its chunks are hints
    let parentNode: TreeNode | undefined;
    let tree = parentTree;
    for (const [i, part] of parts.entries()) {
      const node = (await this.parentNodes(tree)).byName.get(Buffer.from(part).toString('base64'));
      if (i === parts.length - 1) parentNode = node?.type === 'file' ? node : undefined;
      else tree = node?.type === 'dir' ? node.subtree : undefined;
      if (tree === undefined) break;
    }
    let content: string[];
    let size: number;
    try {
      ({ content, size } = await this.readStream(options.stream, PreviousChunks.of(this.store, parentNode?.content), options.path));
      if (this.fatal) throw this.fatal;
      await options.finished?.();
    } catch (err) {
      // the source failed (a read error, a dump command that exited non-zero): no snapshot, but
      // what was stored is indexed, as after an interruption, so the store has no stray packs
      if (this.fatal === undefined) await this.keepWorkDone();
      throw err;
    }

    const nowNs = (BigInt(Date.now()) * 1_000_000n).toString();
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const virtual = (name: string, type: 'file' | 'dir'): TreeNode => {
      const node: TreeNode = {
        ...encodeName(Buffer.from(name)), type, mode: type === 'file' ? 0o600 : 0o700, uid, gid,
        mtimeNs: nowNs, ctimeNs: nowNs, inode: '0', dev: '0', links: 1,
      };
      const user = this.names.user(uid);
      const group = this.names.group(gid);
      if (user) node.user = user;
      if (group) node.group = group;
      return node;
    };
    if (parentNode) this.stats.filesChanged++;
    else this.stats.filesNew++;
    this.stats.bytesTotal += size;
    this.progress.files++;
    let node: TreeNode = { ...virtual(parts.at(-1)!, 'file'), size, content };
    for (let i = parts.length - 2; i >= 0; i--) {
      const subtree = await this.saveTree([node]);
      node = { ...virtual(parts[i]!, 'dir'), subtree };
      this.stats.dirs++;
      this.progress.dirs++;
    }
    this.report(options.path);
    return this.saveTree([node]);
  }

  /** Stream content, segment by segment: hashed in order in a worker, sealed concurrently. */
  private async readStream(stream: AsyncIterable<Uint8Array>, previous: PreviousChunks | undefined, name: string): Promise<{ content: string[]; size: number }> {
    const source = new StreamFiller(stream, this.options.signal);
    const parts: Promise<string[]>[] = [];
    const segment = this.segmentSize;
    let rest: Buffer | undefined;
    let offset = 0;
    for (;;) {
      if (this.fatal) throw this.fatal;
      await this.budget.acquire(segment);
      let hashed;
      try {
        if (this.fatal) throw this.fatal; // stopped while waiting for the budget
        // a buffer of its own: it is transferred to the worker, not copied
        const buf = Buffer.allocUnsafeSlow(segment);
        const start = rest ? rest.copy(buf) : 0;
        const { filled, eof } = await source.fill(buf, start);
        if (this.fatal) throw this.fatal;
        if (filled === 0 && eof) {
          this.budget.release(segment);
          break;
        }
        hashed = await this.pool.hashData(buf.subarray(0, filled), eof, previous?.hintsAt(offset, segment));
      } catch (err) {
        this.budget.release(segment);
        throw err;
      }
      rest = hashed.rest;
      offset += hashed.consumed;
      previous?.advance(offset, hashed.ids);
      this.stats.bytesRead += hashed.consumed;
      this.progress.bytesRead += hashed.consumed;
      this.progress.bytesDone += hashed.consumed;
      this.report(name);
      const stored = settle(this.storeHashed(hashed).finally(() => this.budget.release(segment)));
      this.inflight.add(stored);
      void stored.finally(() => this.inflight.delete(stored)).catch(() => undefined);
      parts.push(stored);
      if (hashed.eof) break;
    }
    return { content: (await Promise.all(parts)).flat(), size: offset };
  }

  private async findParent(hostname: string, paths: string[]) {
    if (this.options.parent) return (await findSnapshots(this.store, { ref: this.options.parent }))[0];
    return (await findSnapshots(this.store, { hostname, paths })).at(-1);
  }

  private warn(p: string, err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code;
    const message = err instanceof Error ? (code && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message) : String(err);
    const w = { path: p, message };
    this.warnings.push(w);
    this.options.onWarning?.(w);
  }

  private report(currentPath?: string): void {
    if (currentPath !== undefined) this.progress.currentPath = currentPath;
    this.options.onProgress?.(this.progress);
  }

  /** A directory on the way to a backed-up path: metadata of the real directory, only selected children. */
  private async saveVirtualDir(dir: string, trie: PathTrie, parentTree: string | undefined): Promise<string> {
    const parentNodes = await this.parentNodes(parentTree);
    const nodes: TreeNode[] = [];
    for (const [name, child] of [...trie.children].sort()) {
      const full = path.join(dir, name);
      const st = lstatSync(full, { bigint: true });
      const node = nodeFromStat(Buffer.from(name), st, this.names);
      const parentNode = parentNodes.byName.get(Buffer.from(name).toString('base64'));
      if (child.selected) {
        const entry = await this.dispatchEntry(Buffer.from(full), node, st, parentNode, st.dev);
        this.flushSmallBatch();
        const done = await entry.done;
        if (done) nodes.push(done);
      } else {
        node.subtree = await this.saveVirtualDir(full, child, parentNode?.subtree);
        nodes.push(node);
      }
    }
    return this.saveTree(nodes);
  }

  /** The parent snapshot's entries of a directory: by raw name (base64), and in stored order. */
  private async parentNodes(treeId: string | undefined): Promise<{ byName: Map<string, TreeNode>; list: TreeNode[] }> {
    const byName = new Map<string, TreeNode>();
    if (!treeId) return { byName, list: [] };
    try {
      const list = (await loadTree(this.store, treeId)).nodes;
      for (const n of list) byName.set(rawName(n).toString('base64'), n);
      return { byName, list };
    } catch {
      // a damaged parent only costs re-reading files
      return { byName: new Map(), list: [] };
    }
  }

  private async saveTree(nodes: TreeNode[]): Promise<string> {
    const { id, isNew } = await saveTree(this.store, sortNodes(nodes));
    if (isNew) this.stats.treeBlobsNew++;
    return id;
  }

  /** Start backing up one entry; `done` gives its tree node (undefined when it was skipped). */
  private async dispatchEntry(full: Buffer, node: TreeNode, st: BigIntStats, parentNode: TreeNode | undefined, rootDev: bigint): Promise<Dispatched<TreeNode | undefined>> {
    if (this.fatal) throw this.fatal;
    switch (node.type) {
      case 'file': {
        const reused = this.reuseUnchanged(node, parentNode);
        if (reused) return dispatched(Promise.resolve(reused));
        if (!this.fileSlots.tryAcquire()) {
          // everything in flight may be waiting for the batch being filled: send it before waiting
          this.flushSmallBatch();
          await this.fileSlots.acquire();
        }
        return dispatched(this.backupFile(full, node, st, parentNode).finally(() => this.fileSlots.release()));
      }
      case 'dir': {
        this.stats.dirs++;
        if ('oneFileSystem' in this.options && this.options.oneFileSystem && st.dev !== rootDev) {
          node.subtree = await this.saveTree([]);
          return dispatched(Promise.resolve(node));
        }
        const subtree = await this.dispatchDir(full, parentNode?.type === 'dir' ? parentNode.subtree : undefined, rootDev);
        return dispatched(subtree.done.then((id) => (id === undefined ? undefined : { ...node, subtree: id })));
      }
      case 'symlink': {
        try {
          const enc = encodeName(readlinkSync(full, { encoding: 'buffer' }));
          node.target = enc.name;
          if (enc.nameRaw) node.targetRaw = enc.nameRaw;
          return dispatched(Promise.resolve(node));
        } catch (err) {
          this.warn(full.toString(), err);
          return dispatched(Promise.resolve(undefined));
        }
      }
      default:
        return dispatched(Promise.resolve(node));
    }
  }

  /** Dispatch a directory's entries; `done` gives its tree ID (undefined if it could not be read). */
  private async dispatchDir(dir: Buffer, parentTree: string | undefined, rootDev: bigint): Promise<Dispatched<string | undefined>> {
    // Unchanged files and cached tree reads complete without real I/O, so the walk could run for
    // seconds without returning to the event loop, starving worker replies (a changed large file
    // would wait for the whole walk). Yield once per directory.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let names: Buffer[];
    try {
      names = readdirSync(dir, { encoding: 'buffer' });
    } catch (err) {
      this.warn(dir.toString(), err);
      return dispatched(Promise.resolve(undefined));
    }
    names.sort(Buffer.compare);
    const parentNodes = await this.parentNodes(parentTree);
    const pending: Promise<TreeNode | undefined>[] = [];
    const sep = Buffer.from('/');
    const isRoot = dir.length === 1 && dir[0] === 0x2f;
    for (const name of names) {
      const full = isRoot ? Buffer.concat([sep, name]) : Buffer.concat([dir, sep, name]);
      let st: BigIntStats;
      try {
        st = lstatSync(full, { bigint: true });
      } catch (err) {
        this.warn(full.toString(), err);
        continue;
      }
      if (this.excludes.excludes(full.toString(), st.isDirectory())) continue;
      const node = nodeFromStat(name, st, this.names);
      pending.push((await this.dispatchEntry(full, node, st, parentNodes.byName.get(name.toString('base64')), rootDev)).done);
    }
    return dispatched(
      Promise.all(pending).then((all) => {
        this.progress.dirs++;
        const nodes = all.filter((n): n is TreeNode => n !== undefined);
        // nothing changed in this directory: its tree is the parent's, no need to encode and hash it
        if (parentTree && this.store.hasBlob(parentTree) && sameNodes(nodes, parentNodes.list)) return parentTree;
        return this.saveTree(nodes);
      }),
    );
  }

  /** The parent's blob list for a file unchanged since the parent snapshot (not read again). */
  private reuseUnchanged(node: TreeNode, parentNode: TreeNode | undefined): TreeNode | undefined {
    if (('force' in this.options && this.options.force) || !parentNode || !unchanged(parentNode, node) || !parentNode.content!.every((id) => this.store.hasBlob(id))) return undefined;
    const size = node.size ?? 0;
    this.stats.filesUnmodified++;
    this.stats.bytesTotal += size;
    this.progress.files++;
    this.progress.bytesDone += size;
    this.report();
    return { ...node, content: parentNode.content! };
  }

  private async backupFile(full: Buffer, node: TreeNode, st: BigIntStats, parentNode: TreeNode | undefined): Promise<TreeNode | undefined> {
    const size = node.size ?? 0;
    try {
      let content: string[] | undefined;
      if (st.nlink > 1n) {
        // hard links: read the content once, share the blob list
        const key = `${st.dev}:${st.ino}`;
        const first = this.hardlinks.get(key);
        if (first) content = await first;
        else {
          const p = this.readContent(full, size, parentNode);
          this.hardlinks.set(key, p.catch(() => undefined));
          content = await p;
        }
      } else {
        content = await this.readContent(full, size, parentNode);
      }
      if (!content) return undefined;
      if (parentNode) this.stats.filesChanged++;
      else this.stats.filesNew++;
      this.stats.bytesTotal += size;
      this.progress.files++;
      this.progress.bytesDone += size;
      this.report(full.toString());
      return { ...node, content };
    } catch (err) {
      if (err instanceof WorkerIoError || (err as NodeJS.ErrnoException).code !== undefined && !(err instanceof ArcaError)) {
        this.warn(full.toString(), err);
        return undefined;
      }
      this.fatal ??= err;
      throw err;
    }
  }

  private readContent(full: Buffer, size: number, parentNode: TreeNode | undefined): Promise<string[]> {
    if (size <= this.smallFileLimit) return this.queueSmallFile(full, size);
    return this.readLargeFile(full, parentNode?.type === 'file' ? PreviousChunks.of(this.store, parentNode.content) : undefined);
  }

  private queueSmallFile(full: Buffer, size: number): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.small.paths.push(full);
      this.small.bytes += size;
      this.small.waiters.push({ resolve, reject });
      if (this.small.paths.length >= SMALL_BATCH_FILES || this.small.bytes >= SMALL_BATCH_BYTES) this.flushSmallBatch();
    });
  }

  private flushSmallBatch(): void {
    const batch = this.small;
    if (batch.paths.length === 0) return;
    this.small = { paths: [], bytes: 0, waiters: [] };
    if (this.fatal) {
      for (const w of batch.waiters) w.reject(this.fatal);
      return;
    }
    const p = this.processSmallBatch(batch).catch((err: unknown) => {
      this.fatal ??= err;
      for (const w of batch.waiters) w.reject(err);
    });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async processSmallBatch(batch: SmallBatch): Promise<void> {
    await this.budget.acquire(batch.bytes);
    try {
      if (this.fatal) throw this.fatal; // stopped while waiting for the budget
      const hashed = await this.pool.hashFiles(batch.paths);
      const ids = await this.storeHashed(hashed);
      let pos = 0;
      hashed.files.forEach((file, i) => {
        const waiter = batch.waiters[i]!;
        if (file.ok) {
          this.stats.bytesRead += file.size;
          this.progress.bytesRead += file.size;
          waiter.resolve(ids.slice(pos, pos + file.chunks));
          pos += file.chunks;
        } else {
          waiter.reject(new WorkerIoError(file.message, file.code));
        }
      });
    } finally {
      this.budget.release(batch.bytes);
    }
  }

  /** Large files are read segment by segment; segments are hashed in order, sealed concurrently. */
  private async readLargeFile(full: Buffer, previous: PreviousChunks | undefined): Promise<string[]> {
    const parts: Promise<string[]>[] = [];
    const segment = this.segmentSize;
    let offset = 0;
    for (;;) {
      if (this.fatal) throw this.fatal;
      await this.budget.acquire(segment);
      let hashed;
      try {
        if (this.fatal) throw this.fatal; // stopped while waiting for the budget
        hashed = await this.pool.hashSegment(full, offset, segment, previous?.hintsAt(offset, segment));
      } catch (err) {
        this.budget.release(segment);
        throw err;
      }
      offset += hashed.consumed;
      previous?.advance(offset, hashed.ids);
      this.stats.bytesRead += hashed.consumed;
      this.progress.bytesRead += hashed.consumed;
      const stored = settle(this.storeHashed(hashed).finally(() => this.budget.release(segment)));
      this.inflight.add(stored);
      void stored.finally(() => this.inflight.delete(stored)).catch(() => undefined);
      parts.push(stored);
      if (hashed.eof || hashed.consumed === 0) break;
    }
    return (await Promise.all(parts)).flat();
  }

  /** Claim the chunks the store lacks, have them compressed + encrypted, and pack them. */
  private async storeHashed(batch: HashedBatch): Promise<string[]> {
    const hex = batch.ids.map((id) => id.toString('hex'));
    const fresh: number[] = [];
    hex.forEach((h, i) => {
      if (this.store.claimBlob(h)) fresh.push(i);
    });
    if (fresh.length === 0) {
      this.pool.drop(batch);
      return hex;
    }
    try {
      const ids = fresh.map((i) => batch.ids[i]!);
      const keys = await this.store.keys.blobKeys(ids, 'write');
      const sealed = await this.pool.seal(batch, fresh, keys, BlobType.Data);
      for (let k = 0; k < fresh.length; k++) {
        const s = sealed[k]!;
        await this.store.addSealedBlob(BlobType.Data, ids[k]!, s);
        this.stats.dataBlobsNew++;
        this.stats.bytesNew += s.rawLength;
        this.stats.bytesStored += s.bytes.length;
        this.progress.bytesStored += s.bytes.length;
      }
      return hex;
    } catch (err) {
      this.fatal ??= err;
      throw err;
    }
  }
}

/**
 * The absolute path to record: the parent directory with symlinks resolved (so every directory on
 * the way is a real directory), the last component as given (a symlink is backed up as a symlink).
 */
function canonicalSourcePath(p: string): string {
  const abs = path.resolve(p);
  try {
    lstatSync(abs);
    return abs === '/' ? '/' : path.join(realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    throw new ArcaError(ArcaErrorCode.SourceNotFound, `cannot back up ${abs}: it does not exist or cannot be read`, { hint: 'check the path' });
  }
}

/** Same entries in the same order, field by field: the tree they encode would be the same blob. */
function sameNodes(a: readonly TreeNode[], b: readonly TreeNode[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameNode(a[i]!, b[i]!)) return false;
  return true;
}

function sameNode(a: TreeNode, b: TreeNode): boolean {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  const keys = Object.keys(x).filter((k) => x[k] !== undefined);
  if (keys.length !== Object.keys(y).filter((k) => y[k] !== undefined).length) return false;
  for (const k of keys) {
    const u = x[k];
    const v = y[k];
    if (Array.isArray(u)) {
      if (!Array.isArray(v) || u.length !== v.length || u.some((e, i) => e !== v[i])) return false;
    } else if (u !== v) return false;
  }
  return true;
}

function unchanged(parent: TreeNode, now: TreeNode): boolean {
  return (
    parent.type === 'file' &&
    parent.content !== undefined &&
    parent.size === now.size &&
    parent.mtimeNs === now.mtimeNs &&
    parent.ctimeNs === now.ctimeNs &&
    parent.inode === now.inode
  );
}

function buildTrie(paths: string[]): PathTrie {
  const root: PathTrie = { children: new Map(), selected: false };
  for (const p of paths) {
    let node = root;
    for (const part of p.split('/').filter(Boolean)) {
      if (node.selected) break; // an ancestor is backed up whole
      let next = node.children.get(part);
      if (!next) {
        next = { children: new Map(), selected: false };
        node.children.set(part, next);
      }
      node = next;
    }
    node.selected = true;
    node.children.clear();
  }
  return root;
}

/** Fills buffers from a byte stream; stops waiting for more bytes when `signal` aborts. */
class StreamFiller {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private readonly signal: AbortSignal | undefined;
  private pending: Buffer | undefined;
  private ended = false;

  constructor(stream: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined) {
    this.iterator = stream[Symbol.asyncIterator]();
    this.signal = signal;
  }

  /** Fill `buf` from `start` until it is full or the stream ends. */
  async fill(buf: Buffer, start: number): Promise<{ filled: number; eof: boolean }> {
    let pos = start;
    while (pos < buf.length) {
      if (this.pending && this.pending.length > 0) {
        const n = this.pending.copy(buf, pos);
        pos += n;
        this.pending = this.pending.subarray(n);
        continue;
      }
      if (this.ended || this.signal?.aborted) break;
      const next = await this.next();
      if (next === undefined) break;
      this.pending = Buffer.from(next.buffer, next.byteOffset, next.byteLength);
    }
    return { filled: pos, eof: this.ended && !(this.pending && this.pending.length > 0) };
  }

  private async next(): Promise<Uint8Array | undefined> {
    const signal = this.signal;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const r = await Promise.race([this.iterator.next(), aborted]);
      if (r === undefined) return undefined;
      if (r.done) {
        this.ended = true;
        return undefined;
      }
      return typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    } finally {
      signal?.removeEventListener('abort', onAbort!);
    }
  }
}

function dispatched<T>(p: Promise<T>): Dispatched<T> {
  return { done: settle(p) };
}

/** Mark a promise as handled now (it is awaited later), so an early rejection is not "unhandled". */
function settle<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

