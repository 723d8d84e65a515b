import { createHash } from 'node:crypto';
import { AEAD_OVERHEAD, AuthenticationError } from '@arca/crypto';
import { ArcaError, ArcaErrorCode, isArcaError } from '../errors/arca-error.ts';
import { BlobType, blobTypeName, openBlob } from '../format/blob-codec.ts';
import { PACK_ENTRY_BYTES, packObjectName, type PackEntry } from '../format/pack-format.ts';
import { SEALED_HEADER_BYTES } from '../format/sealed-file.ts';
import type { TreeNode } from '../snapshot/tree.ts';
import { acquireLock } from '../store/lock-manager.ts';
import { readPackHeaderFromBytes } from '../store/pack-reader.ts';
import type { IndexEntry } from '../store/master-index.ts';
import type { Store } from '../store/store.ts';
import { errorMessage, isDamage, listPacks, readTreeAt, runParallel, scanIndex, scanSnapshots, traverse, type ScannedIndex } from './store-scan.ts';

export interface CheckOptions {
  /** download every pack and verify every blob in it */
  readData?: boolean;
  /** read only part n (1-based) of `of` roughly equal parts of the packs (implies reading data) */
  readDataSubset?: { n: number; of: number };
  onProgress?: (p: CheckProgress) => void;
}

export interface CheckProgress {
  phase: 'index' | 'packs' | 'read-data' | 'snapshots' | 'trees' | 'files';
  done: number;
  total: number;
}

export interface CheckError {
  /**
   * index | pack-missing | pack-size | pack-hash | pack-header | snapshot | tree | tree-invalid |
   * blob-missing | blob-type | blob-damaged
   */
  kind: string;
  message: string;
  pack?: string;
  blob?: string;
  snapshot?: string;
}

export interface DamagedBlob {
  id: string;
  type: 'data' | 'tree';
  /** the pack holding the damaged copy; absent when the blob is in no index */
  pack?: string;
  reason: string;
  /**
   * For a data blob: every (snapshot, file path) whose content uses it. For a tree: every
   * (snapshot, directory path) at which it is referenced (`/` for a snapshot's root).
   */
  files: { snapshot: string; path: string }[];
}

export interface CheckResult {
  /** no errors (unreferenced packs and stray objects are information, not errors) */
  ok: boolean;
  errors: CheckError[];
  /** packs that no index describes, e.g. left by an interrupted backup; `prune` deletes them */
  unreferencedPacks: string[];
  /**
   * packs holding more bytes than their indexed blobs explain, e.g. after `repair index` left a
   * damaged blob out; `prune` reclaims the space (information, not an error)
   */
  packsWithUnindexedData: string[];
  /** objects under `packs/` that are not named like packs (ignored by every command) */
  strayObjects: string[];
  damagedBlobs: DamagedBlob[];
  stats: {
    snapshots: number;
    /** distinct trees loaded */
    trees: number;
    /** packs named in the index */
    packs: number;
    /** distinct blobs in the index */
    blobs: number;
    /** pack bytes downloaded to verify data */
    bytesRead: number;
  };
}

const PACK_READ_CONCURRENCY = 4;
const TREE_CONCURRENCY = 8;

/**
 * Verify a store. The structure check reads the index, snapshots and every reachable tree and lists
 * `packs/` once; with `readData` (or a subset) it also downloads packs and authenticates every blob.
 * Damage is reported in the result, never thrown; only environmental failures throw (backend
 * unreachable, keys refused, the store locked by prune).
 */
export async function check(store: Store, options: CheckOptions = {}): Promise<CheckResult> {
  const subset = options.readDataSubset;
  if (subset && !(Number.isInteger(subset.n) && Number.isInteger(subset.of) && subset.of >= 1 && subset.n >= 1 && subset.n <= subset.of)) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `read-data subset ${subset.n}/${subset.of} is invalid`, { hint: 'use n/t with 1 <= n <= t, e.g. 1/10' });
  }
  const lock = await acquireLock(store, false, 'check');
  try {
    return await checkHoldingLock(store, options);
  } finally {
    await lock.release();
  }
}

/** `check` for a caller that already holds a lock on the store (repair holds an exclusive one). */
export function checkHoldingLock(store: Store, options: CheckOptions = {}): Promise<CheckResult> {
  return new Checker(store, options).run();
}

interface BadCopy {
  id: string;
  type: BlobType;
  pack: string;
  reason: string;
  /** report even when no snapshot uses the blob (damage found by reading it) */
  always: boolean;
}

interface TreeInfo {
  dirs: { name: string; subtree: string }[];
  /** files whose content uses a missing or damaged data blob */
  hits: { name: string; ids: string[] }[];
}

class Checker {
  private readonly packsWithUnindexedData: string[] = [];
  private readonly errors: CheckError[] = [];
  /** blob ID -> damaged or unavailable copies */
  private readonly bad = new Map<string, BadCopy[]>();
  /** data blobs referenced by a tree but in no index */
  private readonly missingData = new Set<string>();
  private readonly badTrees = new Map<string, string>();
  private readonly trees = new Map<string, TreeInfo>();
  private bytesRead = 0;
  private idx!: ScannedIndex;

  private readonly store: Store;
  private readonly options: CheckOptions;

  constructor(store: Store, options: CheckOptions) {
    this.store = store;
    this.options = options;
  }

  private progress(phase: CheckProgress['phase'], done: number, total: number): void {
    this.options.onProgress?.({ phase, done, total });
  }

  private markBad(copy: BadCopy): void {
    const list = this.bad.get(copy.id);
    if (!list) this.bad.set(copy.id, [copy]);
    else if (!list.some((c) => c.pack === copy.pack)) list.push(copy);
  }

  async run(): Promise<CheckResult> {
    // 1. index files
    this.idx = await scanIndex(this.store, (d, t) => this.progress('index', d, t));
    for (const f of this.idx.failed) this.errors.push({ kind: 'index', message: `index file ${f.name} cannot be read: ${errorMessage(f.error)}` });

    // 2. packs: list once, compare with the index
    this.progress('packs', 0, 1);
    const { packs: listed, strays } = await listPacks(this.store);
    for (const [packId, blobs] of this.idx.packs) this.checkPackSize(packId, blobs, listed.get(packId));
    const unreferencedPacks = [...listed.keys()].filter((p) => !this.idx.packs.has(p)).sort();
    this.progress('packs', 1, 1);

    // 3. pack contents (optional): before the tree walk, so files using damaged blobs are found in one walk
    const subset = this.options.readDataSubset;
    if (this.options.readData || subset) {
      const toRead = [...this.idx.packs.keys()]
        .filter((p) => listed.has(p))
        .filter((p) => !subset || parseInt(p.slice(0, 8), 16) % subset.of === subset.n - 1)
        .sort();
      let done = 0;
      this.progress('read-data', 0, toRead.length);
      await runParallel(toRead, PACK_READ_CONCURRENCY, async (packId) => {
        await this.verifyPack(packId, this.idx.packs.get(packId)!);
        this.progress('read-data', ++done, toRead.length);
      });
    }

    // 4. snapshots
    this.progress('snapshots', 0, 1);
    const { snapshots, failed } = await scanSnapshots(this.store);
    for (const f of failed) this.errors.push({ kind: 'snapshot', snapshot: f.id, message: `snapshot ${f.id.slice(0, 8)} cannot be read: ${errorMessage(f.error)}` });
    this.progress('snapshots', snapshots.length + failed.length, snapshots.length + failed.length);

    // 5. every tree reachable from a snapshot, and every blob a tree references
    await traverse(
      snapshots.map((s) => s.snapshot.tree),
      TREE_CONCURRENCY,
      (treeId) => this.visitTree(treeId),
      (done, discovered) => this.progress('trees', done, discovered),
    );

    // 6. map damage to snapshots and paths
    const dataFiles = new Map<string, Map<string, { snapshot: string; path: string }>>();
    const treeFiles = new Map<string, Map<string, { snapshot: string; path: string }>>();
    const damagedTrees = this.badTrees.size > 0 || [...this.bad.values()].some((l) => l.some((c) => c.type === BlobType.Tree));
    if (damagedTrees || [...this.trees.values()].some((t) => t.hits.length > 0)) {
      const tainted = new Map<string, boolean>();
      const isTainted = (id: string): boolean => {
        const known = tainted.get(id);
        if (known !== undefined) return known;
        tainted.set(id, false); // content-addressed trees cannot form cycles; this only guards forged ones
        const info = this.trees.get(id);
        const t = this.badTrees.has(id) || this.bad.has(id) || (info !== undefined && (info.hits.length > 0 || info.dirs.some((d) => isTainted(d.subtree))));
        tainted.set(id, t);
        return t;
      };
      const add = (map: typeof dataFiles, id: string, snapshot: string, path: string) => {
        let m = map.get(id);
        if (!m) map.set(id, (m = new Map()));
        m.set(`${snapshot}\0${path}`, { snapshot, path });
      };
      const walk = (treeId: string, prefix: string, snapshot: string) => {
        if (this.badTrees.has(treeId) || this.bad.has(treeId)) add(treeFiles, treeId, snapshot, prefix || '/');
        const info = this.trees.get(treeId);
        if (!info) return;
        for (const hit of info.hits) for (const id of hit.ids) add(dataFiles, id, snapshot, `${prefix}/${hit.name}`);
        for (const d of info.dirs) if (isTainted(d.subtree)) walk(d.subtree, `${prefix}/${d.name}`, snapshot);
      };
      let done = 0;
      for (const s of snapshots) {
        if (isTainted(s.snapshot.tree)) walk(s.snapshot.tree, '', s.id);
        this.progress('files', ++done, snapshots.length);
      }
    }
    const filesOf = (id: string) =>
      [...(dataFiles.get(id)?.values() ?? []), ...(treeFiles.get(id)?.values() ?? [])].sort((a, b) => a.snapshot.localeCompare(b.snapshot) || a.path.localeCompare(b.path));
    const snapshotsOf = (files: { snapshot: string }[]) => [...new Set(files.map((f) => f.snapshot.slice(0, 8)))].join(', ');

    // 7. the report
    const damagedBlobs: DamagedBlob[] = [];
    for (const copies of this.bad.values()) {
      for (const c of copies) {
        const files = filesOf(c.id);
        if (!c.always && files.length === 0) continue;
        damagedBlobs.push({ id: c.id, type: blobTypeName(c.type), pack: c.pack, reason: c.reason, files });
      }
    }
    for (const [id, reason] of this.badTrees) {
      const files = filesOf(id);
      this.errors.push({ kind: 'tree', blob: id, message: `tree ${id.slice(0, 12)} used by snapshot(s) ${snapshotsOf(files)} cannot be read: ${reason}` });
      if (!this.bad.has(id)) damagedBlobs.push({ id, type: 'tree', ...packOf(this.idx.blobs.get(id)), reason, files });
    }
    for (const id of this.missingData) {
      const files = filesOf(id);
      this.errors.push({ kind: 'blob-missing', blob: id, message: `data blob ${id.slice(0, 12)} used by snapshot(s) ${snapshotsOf(files)} is in no index` });
      damagedBlobs.push({ id, type: 'data', reason: 'not in the index', files });
    }
    damagedBlobs.sort((a, b) => a.id.localeCompare(b.id) || (a.pack ?? '').localeCompare(b.pack ?? ''));

    return {
      ok: this.errors.length === 0,
      errors: this.errors,
      unreferencedPacks,
      packsWithUnindexedData: [...this.packsWithUnindexedData].sort(),
      strayObjects: strays.map((s) => s.name).sort(),
      damagedBlobs,
      stats: {
        snapshots: snapshots.length + failed.length,
        trees: this.trees.size,
        packs: this.idx.packs.size,
        blobs: this.idx.blobs.size,
        bytesRead: this.bytesRead,
      },
    };
  }

  private checkPackSize(packId: string, blobs: Map<string, IndexEntry>, size: number | undefined): void {
    const short = packId.slice(0, 12);
    if (size === undefined) {
      this.errors.push({ kind: 'pack-missing', pack: packId, message: `pack ${short} is in the index (${blobs.size} blobs) but missing from the store` });
      for (const [id, e] of blobs) this.markBad({ id, type: e.type, pack: packId, reason: 'its pack is missing', always: false });
      return;
    }
    let end = 0;
    for (const e of blobs.values()) end = Math.max(end, e.offset + e.length);
    // header: sealed-file header + AEAD + zstd of n entries (zstd adds little to incompressible input)
    const min = end + SEALED_HEADER_BYTES + AEAD_OVERHEAD + 4;
    const max = end + SEALED_HEADER_BYTES + AEAD_OVERHEAD + 4 + blobs.size * PACK_ENTRY_BYTES + 1024;
    if (size < min) {
      this.errors.push({ kind: 'pack-size', pack: packId, message: `pack ${short} is truncated: ${size} bytes, the index needs at least ${min}` });
      for (const [id, e] of blobs) if (e.offset + e.length > size - 4) this.markBad({ id, type: e.type, pack: packId, reason: 'its pack is truncated', always: false });
    } else if (size > max) {
      this.packsWithUnindexedData.push(packId);
    }
  }

  private async verifyPack(packId: string, indexed: Map<string, IndexEntry>): Promise<void> {
    const name = packObjectName(packId);
    const short = packId.slice(0, 12);
    let bytes: Buffer;
    try {
      bytes = await this.store.backend.get(name);
    } catch (err) {
      if (isArcaError(err, ArcaErrorCode.BlobNotFound)) {
        this.errors.push({ kind: 'pack-missing', pack: packId, message: `pack ${short} disappeared while checking` });
        return;
      }
      throw err;
    }
    this.bytesRead += bytes.length;
    if (createHash('sha256').update(bytes).digest('hex') !== packId) {
      this.errors.push({ kind: 'pack-hash', pack: packId, message: `pack ${short} is damaged: its content does not match its name` });
    }

    let header: PackEntry[] | undefined;
    let blobArea = bytes.length;
    try {
      const parsed = await this.readPackHeader(bytes, name);
      header = parsed.entries;
      blobArea = parsed.headerStart;
    } catch (err) {
      if (!isDamage(err)) throw err;
      this.errors.push({ kind: 'pack-header', pack: packId, message: `pack ${short}: header cannot be read: ${errorMessage(err)}` });
    }

    const toVerify = new Map(indexed);
    if (header) {
      const inHeader = new Map(header.map((h) => [h.id.toString('hex'), h]));
      for (const [id, e] of indexed) {
        const h = inHeader.get(id);
        if (!h) {
          this.errors.push({ kind: 'pack-header', pack: packId, blob: id, message: `the index places blob ${id.slice(0, 12)} in pack ${short}, but the pack's header does not list it` });
        } else if (h.type !== e.type || h.encoding !== e.encoding || h.offset !== e.offset || h.length !== e.length || h.rawLength !== e.rawLength) {
          this.errors.push({ kind: 'pack-header', pack: packId, blob: id, message: `blob ${id.slice(0, 12)}: pack ${short}'s header and the index disagree on its type, encoding, offset or length` });
        }
      }
      for (const [id, h] of inHeader) {
        if (indexed.has(id)) continue;
        this.errors.push({ kind: 'pack-header', pack: packId, blob: id, message: `pack ${short} holds blob ${id.slice(0, 12)}, which no index lists` });
        toVerify.set(id, { packId, type: h.type, encoding: h.encoding, offset: h.offset, length: h.length, rawLength: h.rawLength });
      }
    }

    // authenticate and re-hash every blob; keys for the whole pack in one request
    const list = [...toVerify];
    const keys = await this.store.keys.blobKeys(list.map(([id]) => Buffer.from(id, 'hex')), 'read');
    list.forEach(([id, e], i) => {
      let reason: string | undefined;
      if (e.offset < 0 || e.offset + e.length > blobArea) {
        reason = `its bytes ${e.offset}..${e.offset + e.length} lie outside the pack's blob area (${blobArea} bytes)`;
      } else {
        try {
          const plain = openBlob(keys[i]!, Buffer.from(id, 'hex'), e.type, e.encoding, bytes.subarray(e.offset, e.offset + e.length), e.rawLength);
          if (plain.length !== e.rawLength) reason = `it decrypts to ${plain.length} bytes, the index says ${e.rawLength}`;
          else if (this.store.blobId(plain, e.type).toString('hex') !== id) reason = 'its content does not match its ID';
        } catch (err) {
          reason = err instanceof AuthenticationError ? 'authentication failed (the stored bytes were modified)' : `it cannot be decoded (${errorMessage(err)})`;
        }
      }
      if (reason !== undefined) {
        this.errors.push({ kind: 'blob-damaged', pack: packId, blob: id, message: `${blobTypeName(e.type)} blob ${id.slice(0, 12)} in pack ${short} is damaged: ${reason}` });
        this.markBad({ id, type: e.type, pack: packId, reason, always: true });
      }
    });
  }

  private readPackHeader(bytes: Buffer, name: string): Promise<{ entries: PackEntry[]; headerStart: number }> {
    return readPackHeaderFromBytes(this.store, bytes, name);
  }

  /** Load one tree, check what it references; returns the subtrees to visit. */
  private async visitTree(treeId: string): Promise<string[]> {
    let nodes: TreeNode[];
    try {
      nodes = (await readTreeAt(this.store, treeId, this.idx.blobs.get(treeId))).tree.nodes;
    } catch (err) {
      if (!isDamage(err)) throw err;
      this.badTrees.set(treeId, errorMessage(err));
      return [];
    }
    const info: TreeInfo = { dirs: [], hits: [] };
    const children: string[] = [];
    const invalid = (what: string) =>
      this.errors.push({ kind: 'tree-invalid', blob: treeId, message: `tree ${treeId.slice(0, 12)} has an invalid entry: ${what}` });
    for (const node of nodes) {
      if (node === null || typeof node !== 'object' || typeof node.name !== 'string' || typeof node.type !== 'string') {
        invalid('not a node');
        continue;
      }
      if (node.type === 'dir') {
        if (typeof node.subtree !== 'string' || !/^[0-9a-f]{64}$/.test(node.subtree)) {
          invalid(`directory ${node.name} has no valid subtree ID`);
          continue;
        }
        info.dirs.push({ name: node.name, subtree: node.subtree });
        children.push(node.subtree);
      } else if (node.type === 'file') {
        const content: unknown = node.content ?? [];
        if (!Array.isArray(content) || !content.every((c) => typeof c === 'string' && /^[0-9a-f]{64}$/.test(c))) {
          invalid(`file ${node.name} has an invalid content list`);
          continue;
        }
        const hit: string[] = [];
        for (const id of content as string[]) {
          const locs = this.idx.blobs.get(id);
          if (!locs) {
            this.missingData.add(id);
            hit.push(id);
          } else if (!locs.some((l) => l.type === BlobType.Data)) {
            this.errors.push({ kind: 'blob-type', blob: id, message: `file ${node.name} in tree ${treeId.slice(0, 12)} uses blob ${id.slice(0, 12)}, which is a tree blob` });
            for (const l of locs) this.markBad({ id, type: l.type, pack: l.packId, reason: 'used as file content but stored as a tree', always: true });
            hit.push(id);
          } else if (this.bad.has(id)) {
            hit.push(id);
          }
        }
        if (hit.length > 0) info.hits.push({ name: node.name, ids: [...new Set(hit)] });
      }
    }
    this.trees.set(treeId, info);
    return children;
  }
}

function packOf(locs: IndexEntry[] | undefined): { pack?: string } {
  const first = locs?.[0];
  return first ? { pack: first.packId } : {};
}
