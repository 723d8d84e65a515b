import { lstat, open, readdir, readFile, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { FastCdc } from '../chunker/fastcdc.ts';
import { BlobType } from '../format/blob-codec.ts';
import { FileKind } from '../format/sealed-file.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';
import type { BackupSummary, Snapshot } from '../snapshot/snapshot.ts';
import { encodeName, rawName, sortNodes, type TreeNode } from '../snapshot/tree.ts';
import { loadTree, saveTree } from '../snapshot/tree-io.ts';
import { findSnapshots } from '../snapshot/snapshot-io.ts';
import { Semaphore } from '../util/semaphore.ts';
import { BlobWorkerPool, type HashedBatch } from './blob-worker-pool.ts';
import { ExcludeRules } from './exclude-rules.ts';
import { nodeFromStat } from './node-from-stat.ts';
import { UserNames } from './user-names.ts';
import { ByteBudget } from '../util/byte-budget.ts';
import { ENGINE_VERSION } from '../version.ts';

export interface BackupOptions {
  paths: string[];
  excludes?: string[];
  excludeFiles?: string[];
  oneFileSystem?: boolean;
  tags?: string[];
  hostname?: string;
  /** parent snapshot ID; default: the latest snapshot of the same host and paths */
  parent?: string;
  /** force reading every file, ignoring the parent */
  force?: boolean;
  workers?: number;
  onProgress?: (p: BackupProgress) => void;
  onWarning?: (w: BackupWarning) => void;
}

export interface BackupProgress {
  files: number;
  dirs: number;
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

const MAX_FILES_IN_FLIGHT = 64;
const MAX_BYTES_IN_FLIGHT = 96 * 1024 * 1024;

/** Snapshot one or more paths into a store. */
export async function backup(store: Store, options: BackupOptions): Promise<BackupResult> {
  if (options.paths.length === 0) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'nothing to back up: give at least one path');
  const lock = await acquireLock(store, false, 'backup');
  try {
    const runner = new BackupRunner(store, options);
    return await runner.run();
  } finally {
    await lock.release();
  }
}

interface PathTrie {
  children: Map<string, PathTrie>;
  selected: boolean;
}

class BackupRunner {
  private readonly chunker: FastCdc;
  private readonly excludes: ExcludeRules;
  private readonly names = new UserNames();
  private readonly fileSlots = new Semaphore(MAX_FILES_IN_FLIGHT);
  private readonly budget = new ByteBudget(MAX_BYTES_IN_FLIGHT);
  private pool!: BlobWorkerPool;
  private readonly warnings: BackupWarning[] = [];
  private readonly hardlinks = new Map<string, Promise<string[] | undefined>>();
  private fatal: unknown;
  private readonly progress: BackupProgress = { files: 0, dirs: 0, bytesDone: 0, bytesRead: 0, bytesStored: 0 };
  private readonly stats: BackupSummary = {
    filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, skipped: 0, dataBlobsNew: 0, treeBlobsNew: 0,
    bytesRead: 0, bytesTotal: 0, bytesNew: 0, bytesStored: 0, durationMs: 0,
  };
  private readonly segmentSize: number;

  private readonly store: Store;
  private readonly options: BackupOptions;

  constructor(store: Store, options: BackupOptions) {
    this.store = store;
    this.options = options;
    this.chunker = new FastCdc(store.keys.agentKeys.chunkerKey, store.config.chunker);
    this.excludes = new ExcludeRules(options.excludes, options.excludeFiles);
    this.segmentSize = Math.max(16 * 1024 * 1024, 2 * store.config.chunker.maxSize);
  }

  async run(): Promise<BackupResult> {
    const started = Date.now();
    const paths = [...new Set(this.options.paths.map((p) => path.resolve(p)))].sort();
    for (const p of paths) {
      try {
        await lstat(p);
      } catch {
        throw new ArcaError(ArcaErrorCode.SourceNotFound, `cannot back up ${p}: it does not exist or cannot be read`);
      }
    }
    await this.store.loadIndex();
    const hostname = this.options.hostname ?? os.hostname();
    const parent = this.options.force ? undefined : await this.findParent(hostname, paths);
    this.pool = new BlobWorkerPool(this.store.keys.agentKeys.macKey, this.store.config.compression.level, this.options.workers);
    let rootTree: string;
    try {
      rootTree = await this.saveVirtualDir('/', buildTrie(paths), parent?.snapshot.tree);
      if (this.fatal) throw this.fatal;
      await this.store.flush();
    } finally {
      await this.pool.close();
    }
    this.stats.durationMs = Date.now() - started;
    this.stats.skipped = this.warnings.length;
    const snapshot: Snapshot = {
      version: 1,
      time: new Date(started).toISOString(),
      tree: rootTree,
      paths,
      hostname,
      username: safeUser(),
      tags: this.options.tags ?? [],
      programVersion: ENGINE_VERSION,
      summary: this.stats,
    };
    if (parent) snapshot.parent = parent.id;
    if (!this.excludes.empty) snapshot.excludes = this.excludes.patterns;
    const id = await this.store.writeSealedFile('snapshots', FileKind.Snapshot, snapshot);
    return { id, snapshot, warnings: this.warnings };
  }

  private async findParent(hostname: string, paths: string[]) {
    if (this.options.parent) {
      const [rec] = await findSnapshots(this.store, { ref: this.options.parent });
      return rec;
    }
    const same = await findSnapshots(this.store, { hostname, paths });
    return same.at(-1);
  }

  private warn(p: string, err: unknown): void {
    const message = err instanceof Error ? ((err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ${err.message}` : err.message) : String(err);
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
      const st = await lstat(full, { bigint: true });
      const node = nodeFromStat(Buffer.from(name), st, this.names);
      const parentNode = parentNodes.get(Buffer.from(name).toString('base64'));
      if (child.selected) {
        const entry = await this.dispatchEntry(Buffer.from(full), node, st, parentNode, st.dev);
        const done = await entry.done;
        if (done) nodes.push(done);
      } else {
        node.subtree = await this.saveVirtualDir(full, child, parentNode?.subtree);
        nodes.push(node);
      }
    }
    return this.saveTree(nodes);
  }

  private async parentNodes(treeId: string | undefined): Promise<Map<string, TreeNode>> {
    const map = new Map<string, TreeNode>();
    if (!treeId) return map;
    try {
      for (const n of (await loadTree(this.store, treeId)).nodes) map.set(rawName(n).toString('base64'), n);
    } catch {
      // a damaged parent only costs re-reading files
    }
    return map;
  }

  private async saveTree(nodes: TreeNode[]): Promise<string> {
    const before = this.store.index.size;
    const id = await saveTree(this.store, sortNodes(nodes));
    if (this.store.index.size !== before || !this.store.index.has(id)) this.stats.treeBlobsNew++;
    return id;
  }

  /**
   * Start backing up one entry. Resolves (after dispatching, not completing) to a promise of its
   * tree node, so that siblings and other directories proceed concurrently.
   */
  private async dispatchEntry(full: Buffer, node: TreeNode, st: BigIntStats, parentNode: TreeNode | undefined, rootDev: bigint): Promise<Dispatched<TreeNode | undefined>> {
    if (this.fatal) throw this.fatal;
    switch (node.type) {
      case 'file': {
        this.stats.bytesTotal += node.size ?? 0;
        await this.fileSlots.acquire();
        return dispatched(this.backupFile(full, node, st, parentNode).finally(() => this.fileSlots.release()));
      }
      case 'dir': {
        this.stats.dirs++;
        this.progress.dirs++;
        if (this.options.oneFileSystem && st.dev !== rootDev) {
          node.subtree = await this.saveTree([]);
          return dispatched(Promise.resolve(node));
        }
        const subtree = await this.dispatchDir(full, parentNode?.type === 'dir' ? parentNode.subtree : undefined, rootDev);
        return dispatched(subtree.done.then((id) => (id === undefined ? undefined : { ...node, subtree: id })));
      }
      case 'symlink': {
        try {
          const target = await readlink(full, { encoding: 'buffer' });
          const enc = encodeName(target);
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

  /** Dispatch a directory's entries; resolves to a promise of its tree ID (undefined if unreadable). */
  private async dispatchDir(dir: Buffer, parentTree: string | undefined, rootDev: bigint): Promise<Dispatched<string | undefined>> {
    let names: Buffer[];
    try {
      names = await readdir(dir, { encoding: 'buffer' });
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
        st = await lstat(full, { bigint: true });
      } catch (err) {
        this.warn(full.toString(), err);
        continue;
      }
      if (this.excludes.excludes(full.toString(), st.isDirectory())) continue;
      const node = nodeFromStat(name, st, this.names);
      pending.push((await this.dispatchEntry(full, node, st, parentNodes.get(name.toString('base64')), rootDev)).done);
    }
    return dispatched(
      Promise.all(pending).then(async (nodes) => {
        this.progress.dirs++;
        return this.saveTree(nodes.filter((n): n is TreeNode => n !== undefined));
      }),
    );
  }

  private async backupFile(full: Buffer, node: TreeNode, st: BigIntStats, parentNode: TreeNode | undefined): Promise<TreeNode | undefined> {
    try {
      if (parentNode && unchanged(parentNode, node) && parentNode.content!.every((id) => this.store.hasBlob(id))) {
        this.stats.filesUnmodified++;
        this.progress.files++;
        this.progress.bytesDone += node.size ?? 0;
        this.report();
        return { ...node, content: parentNode.content! };
      }
      let content: string[] | undefined;
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = this.hardlinks.get(key);
        if (first) content = await first;
        else {
          const p = this.readFileContent(full, node.size ?? 0);
          this.hardlinks.set(key, p.catch(() => undefined));
          content = await p;
        }
      } else {
        content = await this.readFileContent(full, node.size ?? 0);
      }
      if (!content) return undefined;
      if (parentNode) this.stats.filesChanged++;
      else this.stats.filesNew++;
      this.progress.files++;
      this.report(full.toString());
      return { ...node, content };
    } catch (err) {
      if (err instanceof ArcaError || !(err as NodeJS.ErrnoException).code) {
        this.fatal ??= err;
        throw err;
      }
      this.warn(full.toString(), err);
      return undefined;
    }
  }

  /** Read, chunk and store a file's content; returns its data blob IDs. */
  private async readFileContent(full: Buffer, expectedSize: number): Promise<string[]> {
    if (expectedSize <= this.segmentSize) {
      const data = await readFile(full);
      this.progress.bytesRead += data.length;
      this.stats.bytesRead += data.length;
      const owned = data.byteOffset === 0 && data.buffer.byteLength === data.length;
      return this.storeBatch(data, this.chunker.chunkLengths(data), owned);
    }
    const fh = await open(full, 'r');
    try {
      const batches: Promise<string[]>[] = [];
      let buf = Buffer.allocUnsafeSlow(this.segmentSize);
      let filled = 0;
      let eof = false;
      while (!eof) {
        while (filled < buf.length) {
          const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null);
          if (bytesRead === 0) {
            eof = true;
            break;
          }
          filled += bytesRead;
          this.progress.bytesRead += bytesRead;
          this.stats.bytesRead += bytesRead;
        }
        const lengths: number[] = [];
        let pos = 0;
        while (pos < filled && (eof || filled - pos >= this.store.config.chunker.maxSize)) {
          const len = this.chunker.nextChunkLength(buf, pos, filled);
          lengths.push(len);
          pos += len;
        }
        const next = Buffer.allocUnsafeSlow(this.segmentSize);
        buf.copy(next, 0, pos, filled);
        if (pos > 0) batches.push(settle(this.storeBatch(buf.subarray(0, pos), lengths, true)));
        filled -= pos;
        buf = next;
        if (this.fatal) throw this.fatal;
      }
      return (await Promise.all(batches)).flat();
    } finally {
      await fh.close();
    }
  }

  /** Hash a batch of chunks in a worker, then compress + encrypt + pack only the new ones. */
  private async storeBatch(data: Buffer, lengths: number[], transfer: boolean): Promise<string[]> {
    if (lengths.length === 0) return [];
    const size = data.length;
    await this.budget.acquire(size);
    let batch: HashedBatch | undefined;
    try {
      batch = await this.pool.hash(data, lengths, transfer);
      const hex = batch.ids.map((id) => id.toString('hex'));
      const fresh: number[] = [];
      hex.forEach((h, i) => {
        if (this.store.claimBlob(h)) fresh.push(i);
      });
      if (fresh.length > 0) {
        const ids = fresh.map((i) => batch!.ids[i]!);
        const keys = await this.store.keys.blobKeys(ids, 'write');
        const sealed = await this.pool.seal(batch, fresh, keys, BlobType.Data);
        batch = undefined;
        for (let k = 0; k < fresh.length; k++) {
          const s = sealed[k]!;
          await this.store.addSealedBlob(BlobType.Data, ids[k]!, s);
          this.stats.dataBlobsNew++;
          this.stats.bytesNew += s.rawLength;
          this.stats.bytesStored += s.bytes.length;
          this.progress.bytesStored += s.bytes.length;
        }
      }
      this.progress.bytesDone += size;
      this.report();
      return hex;
    } catch (err) {
      this.fatal ??= err;
      throw err;
    } finally {
      if (batch) this.pool.drop(batch);
      this.budget.release(size);
    }
  }
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
  // a selected ancestor covers its descendants
  return root;
}

/** Work that has been started: `done` settles when it completes. */
interface Dispatched<T> {
  done: Promise<T>;
}

function dispatched<T>(p: Promise<T>): Dispatched<T> {
  return { done: settle(p) };
}

/** Mark a promise as handled now (it is awaited later), so an early rejection is not "unhandled". */
function settle<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '';
  }
}
