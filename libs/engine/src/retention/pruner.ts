import { AuthenticationError } from '@arca/crypto';
import { listAll } from '../backend/storage-backend.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { blobTypeName, openBlob } from '../format/blob-codec.ts';
import { PACK_ENTRY_BYTES, packObjectName } from '../format/pack-format.ts';
import { FileKind } from '../format/sealed-file.ts';
import { errorMessage, isDamage, listPacks, readTreeAt, scanIndex, scanSnapshots, traverse } from '../check/store-scan.ts';
import { acquireLock } from '../store/lock-manager.ts';
import { indexFileContent, type IndexEntry } from '../store/master-index.ts';
import type { Store } from '../store/store.ts';

export interface PruneProgress {
  phase: 'index' | 'snapshots' | 'trees' | 'plan' | 'repack' | 'write-index' | 'delete-index' | 'delete-packs';
  done: number;
  total: number;
}

/** The four crash-safety steps of prune, in order (see `prune`). */
export type PruneStep = 'repacked' | 'index-written' | 'old-index-deleted' | 'packs-deleted';

export interface PruneOptions {
  /** plan and report, change nothing */
  dryRun?: boolean;
  /**
   * Tolerated unused space, in percent of the store's pack bytes (default 5). Partly used packs are
   * repacked, most unused bytes first, until the unused share is at most this. 0 repacks every
   * partly used pack; 100 never repacks.
   */
  maxUnusedPercent?: number;
  onProgress?: (p: PruneProgress) => void;
  /**
   * Called after each completed step; throwing from it aborts prune there, the way a crash would.
   * For tests of crash safety.
   */
  afterStep?: (step: PruneStep) => void | Promise<void>;
}

export interface PruneResult {
  dryRun: boolean;
  /** packs deleted whole: no used blob left, or in no index at all (counted in `unreferencedPacks` too) */
  packsDeleted: number;
  /** partly used packs whose used blobs were copied into new packs, then deleted */
  packsRepacked: number;
  /** existing packs left as they are */
  packsKept: number;
  /** packs present in `packs/` but in no index (leftovers of interrupted backups), deleted */
  unreferencedPacks: number;
  /** blob copies dropped from the index: unused blobs and surplus copies of duplicated blobs */
  blobsRemoved: number;
  /** pack bytes deleted minus pack bytes written (estimated in a dry run) */
  bytesFreed: number;
  /** bytes of blobs copied into new packs */
  bytesRepacked: number;
  /** bytes of unused blobs left in kept packs */
  unusedBytesAfter: number;
  /**
   * Packs the index names but the store does not have. Prune keeps their index entries (it never
   * silently forgets data); `arca check` reports which files they affect.
   */
  missingPacks: string[];
}

/** Blobs per index file written by prune (keeps index files at a few MiB). */
const INDEX_BLOBS_PER_FILE = 50_000;
const TREE_CONCURRENCY = 8;
const DELETE_CONCURRENCY = 8;

interface PackInfo {
  id: string;
  /** listed size; undefined when the pack is missing */
  size: number | undefined;
  entries: Map<string, IndexEntry>;
  /** blobs for which this pack holds the copy that is kept */
  home: string[];
  usedBytes: number;
  unusedBytes: number;
}

function refuse(message: string, cause?: unknown): ArcaError {
  return new ArcaError(ArcaErrorCode.CorruptObject, `prune refuses to run: ${message}`, {
    hint: 'run `arca check` to see the damage; prune only runs on a store whose index, snapshots and trees are all readable',
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Remove data that no snapshot uses.
 *
 * Runs under an EXCLUSIVE lock: no backup can add blobs (or deduplicate against blobs about to be
 * deleted) meanwhile. Every blob reachable from any snapshot is marked used. Packs with no used
 * blob are deleted; partly used packs are repacked (their used blobs copied, still sealed, into new
 * packs: a blob's encryption binds to its ID, not to its pack) while the store's unused share is
 * above `maxUnusedPercent`; packs in no index are garbage of interrupted backups and are deleted.
 *
 * Crash-safety ORDER — a crash after any step leaves a store that passes `check`:
 *   1. write the repacked packs, and an index file for them (Store.flush). A crash before that
 *      index file leaves only unreferenced packs, which check reports as information and the next
 *      prune deletes.
 *   2. write new index file(s) describing every kept blob of the old packs; the last one lists all
 *      old index files in `supersedes`. Old and new index files now describe the same (still
 *      existing) packs, so the union every reader loads is valid.
 *   3. delete the old index files. From here no index names a pack about to be deleted.
 *   4. delete the packs no longer needed (unused, repacked, unreferenced).
 * Readers (and check, and the next prune) take the UNION of all index files and ignore
 * `supersedes`: after a crash between 2 and 3, a backup may already have deduplicated against a
 * blob that only an old index file lists, and honoring `supersedes` would then drop a used pack.
 */
export async function prune(store: Store, options: PruneOptions = {}): Promise<PruneResult> {
  const maxUnused = options.maxUnusedPercent ?? 5;
  if (!(Number.isFinite(maxUnused) && maxUnused >= 0 && maxUnused <= 100)) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `maxUnusedPercent must be between 0 and 100, got ${String(maxUnused)}`);
  }
  // a dry run changes nothing: it may run beside backups
  const lock = await acquireLock(store, !options.dryRun, 'prune');
  try {
    return await runPrune(store, options, maxUnused);
  } finally {
    await lock.release();
  }
}

async function runPrune(store: Store, options: PruneOptions, maxUnusedPercent: number): Promise<PruneResult> {
  const progress = (phase: PruneProgress['phase'], done: number, total: number) => options.onProgress?.({ phase, done, total });
  const dryRun = options.dryRun ?? false;

  // ---- what is stored ----
  const idx = await scanIndex(store, (d, t) => progress('index', d, t));
  if (idx.failed.length > 0) {
    const f = idx.failed[0]!;
    throw refuse(`index file ${f.name} cannot be read (${errorMessage(f.error)}); the packs it describes would look unused`, f.error);
  }
  const oldIndexFiles = idx.files.map((f) => f.name);
  const { packs: listed } = await listPacks(store);

  // ---- what is used ----
  progress('snapshots', 0, 1);
  const { snapshots, failed } = await scanSnapshots(store);
  if (failed.length > 0) {
    const f = failed[0]!;
    throw refuse(`snapshot ${f.id.slice(0, 8)} cannot be read (${errorMessage(f.error)}); the data it uses would look unused`, f.error);
  }
  progress('snapshots', snapshots.length, snapshots.length);
  const used = new Set<string>();
  const missing = new Set<string>();
  await traverse(
    snapshots.map((s) => s.snapshot.tree),
    TREE_CONCURRENCY,
    async (treeId) => {
      used.add(treeId);
      let nodes;
      try {
        nodes = (await readTreeAt(store, treeId, idx.blobs.get(treeId))).tree.nodes;
      } catch (err) {
        if (isDamage(err)) throw refuse(`tree ${treeId.slice(0, 12)} cannot be read (${errorMessage(err)}); the data below it would look unused`, err);
        throw err;
      }
      const children: string[] = [];
      for (const node of nodes) {
        if (node.type === 'dir' && typeof node.subtree === 'string') children.push(node.subtree);
        else if (node.type === 'file' && Array.isArray(node.content)) {
          for (const id of node.content) {
            used.add(id);
            if (!idx.blobs.has(id)) missing.add(id);
          }
        }
      }
      return children;
    },
    (done, total) => progress('trees', done, total),
  );
  if (missing.size > 0) {
    throw refuse(`${missing.size} data blob(s) used by snapshots are in no index (e.g. ${[...missing][0]!.slice(0, 12)})`);
  }

  // ---- plan ----
  progress('plan', 0, 1);
  const packs = new Map<string, PackInfo>();
  for (const [id, entries] of idx.packs) packs.set(id, { id, size: listed.get(id), entries, home: [], usedBytes: 0, unusedBytes: 0 });
  // A blob stored more than once keeps the copy in the pack that is most used overall, so that
  // duplicate copies (e.g. left by an interrupted prune) end up in packs that can be dropped whole.
  const usedShare = new Map<string, number>();
  for (const p of packs.values()) {
    let total = 0;
    let u = 0;
    for (const [id, e] of p.entries) {
      total += e.length;
      if (used.has(id)) u += e.length;
    }
    usedShare.set(p.id, total === 0 ? 0 : u / total);
  }
  for (const [id, locs] of idx.blobs) {
    if (!used.has(id)) continue;
    const present = locs.filter((l) => listed.has(l.packId));
    const candidates = present.length > 0 ? present : locs;
    let best = candidates[0]!;
    for (const l of candidates.slice(1)) {
      const a = usedShare.get(l.packId)!;
      const b = usedShare.get(best.packId)!;
      if (a > b || (a === b && l.packId < best.packId)) best = l;
    }
    packs.get(best.packId)!.home.push(id);
  }
  const missingPacks: string[] = [];
  const toDelete: PackInfo[] = [];
  const partly: PackInfo[] = [];
  const kept: PackInfo[] = [];
  for (const p of [...packs.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    const home = new Set(p.home);
    for (const [id, e] of p.entries) {
      if (home.has(id)) p.usedBytes += e.length;
      else p.unusedBytes += e.length;
    }
    if (p.size === undefined) missingPacks.push(p.id); // keep its entries: never silently forget data
    else if (p.home.length === 0) toDelete.push(p);
    else if (p.home.length === p.entries.size) kept.push(p);
    else partly.push(p);
  }
  const unreferenced = [...listed.keys()].filter((id) => !packs.has(id)).sort();

  // repack the partly used packs with the most unused bytes first, until the unused share is low enough
  let storeBytes = [...kept, ...partly].reduce((n, p) => n + p.size!, 0);
  let unusedBytes = partly.reduce((n, p) => n + p.unusedBytes, 0);
  const toRepack: PackInfo[] = [];
  const candidates = [...partly].sort((a, b) => b.unusedBytes - a.unusedBytes || a.id.localeCompare(b.id));
  for (const p of candidates) {
    if (unusedBytes <= (maxUnusedPercent / 100) * storeBytes) break;
    toRepack.push(p);
    unusedBytes -= p.unusedBytes;
    storeBytes -= p.unusedBytes;
  }
  const repackSet = new Set(toRepack.map((p) => p.id));
  const keptAfter = [...kept, ...partly.filter((p) => !repackSet.has(p.id))];

  const deletedBytes =
    toDelete.reduce((n, p) => n + p.size!, 0) + toRepack.reduce((n, p) => n + p.size!, 0) + unreferenced.reduce((n, id) => n + listed.get(id)!, 0);
  const bytesRepacked = toRepack.reduce((n, p) => n + p.usedBytes, 0);
  const blobsRepacked = toRepack.reduce((n, p) => n + p.home.length, 0);
  const result: PruneResult = {
    dryRun,
    packsDeleted: toDelete.length + unreferenced.length,
    packsRepacked: toRepack.length,
    packsKept: keptAfter.length,
    unreferencedPacks: unreferenced.length,
    blobsRemoved: toDelete.reduce((n, p) => n + p.entries.size, 0) + toRepack.reduce((n, p) => n + p.entries.size - p.home.length, 0),
    // estimate for a dry run: repacked blobs plus a header per new pack
    bytesFreed: deletedBytes - bytesRepacked - estimateHeaders(blobsRepacked, bytesRepacked, store.config.packSize),
    bytesRepacked,
    unusedBytesAfter: keptAfter.reduce((n, p) => n + p.unusedBytes, 0),
    missingPacks,
  };
  progress('plan', 1, 1);
  if (dryRun) return result;
  const indexChanges = toDelete.length > 0 || toRepack.length > 0;
  if (!indexChanges && unreferenced.length === 0) return result;

  // ---- step 1: repack ----
  let done = 0;
  progress('repack', 0, toRepack.length);
  for (const p of toRepack) {
    await repackPack(store, p);
    progress('repack', ++done, toRepack.length);
  }
  await store.flush(); // uploads the new packs and writes the index file describing them
  if (toRepack.length > 0) {
    let written = 0;
    for (const obj of await listAll(store.backend, 'packs/')) {
      const m = /([0-9a-f]{64})$/.exec(obj.name);
      if (m && !listed.has(m[1]!)) written += obj.size;
    }
    result.bytesFreed = deletedBytes - written;
  }
  await options.afterStep?.('repacked');

  if (indexChanges) {
    // ---- step 2: new index for every blob of the packs that stay ----
    const chunks: Map<string, { id: string; entry: IndexEntry }[]>[] = [new Map()];
    let inChunk = 0;
    for (const p of [...keptAfter, ...missingPacks.map((id) => packs.get(id)!)].sort((a, b) => a.id.localeCompare(b.id))) {
      if (inChunk >= INDEX_BLOBS_PER_FILE) {
        chunks.push(new Map());
        inChunk = 0;
      }
      chunks.at(-1)!.set(
        p.id,
        [...p.entries].map(([id, entry]) => ({ id, entry })),
      );
      inChunk += p.entries.size;
    }
    const supersedes = oldIndexFiles.map((n) => n.slice('index/'.length));
    // the last file carries `supersedes`: it exists only once all the others were written
    for (let i = 0; i < chunks.length; i++) {
      progress('write-index', i, chunks.length);
      await store.writeSealedFile('index', FileKind.Index, indexFileContent(chunks[i]!, i === chunks.length - 1 ? supersedes : []));
    }
    progress('write-index', chunks.length, chunks.length);
    await options.afterStep?.('index-written');

    // ---- step 3: old index files ----
    await deleteAll(store, oldIndexFiles, (d, t) => progress('delete-index', d, t));
    await options.afterStep?.('old-index-deleted');
  }

  // ---- step 4: packs ----
  const doomed = [...toDelete.map((p) => p.id), ...toRepack.map((p) => p.id), ...unreferenced].map(packObjectName);
  await deleteAll(store, doomed, (d, t) => progress('delete-packs', d, t));
  await options.afterStep?.('packs-deleted');

  // the Store's in-memory index must forget the removed blobs before it is used again
  await store.loadIndex();
  return result;
}

/** Copy the kept blobs of one pack into new packs, verifying each (a damaged blob aborts prune). */
async function repackPack(store: Store, p: PackInfo): Promise<void> {
  const bytes = await store.backend.get(packObjectName(p.id));
  const blobs = p.home.map((id) => ({ id, entry: p.entries.get(id)! })).sort((a, b) => a.entry.offset - b.entry.offset);
  const ids = blobs.map((b) => Buffer.from(b.id, 'hex'));
  const keys = await store.keys.blobKeys(ids, 'read');
  for (let i = 0; i < blobs.length; i++) {
    const { id, entry } = blobs[i]!;
    const idBytes = ids[i]!;
    if (entry.offset + entry.length > bytes.length) throw refuse(`blob ${id.slice(0, 12)} lies beyond the end of pack ${p.id.slice(0, 12)}`);
    const sealed = Buffer.from(bytes.subarray(entry.offset, entry.offset + entry.length));
    try {
      const plain = openBlob(keys[i]!, idBytes, entry.type, entry.encoding, sealed, entry.rawLength);
      if (!store.blobId(plain, entry.type).equals(idBytes)) throw new Error('its content does not match its ID');
    } catch (err) {
      const why = err instanceof AuthenticationError ? 'authentication failed' : errorMessage(err);
      throw refuse(`${blobTypeName(entry.type)} blob ${id.slice(0, 12)} in pack ${p.id.slice(0, 12)} is damaged (${why})`, err);
    }
    // The claim only marks the blob in flight; its result is irrelevant here: a caller may have
    // loaded the index, which still lists the old copy that is about to go.
    store.claimBlob(id);
    await store.addSealedBlob(entry.type, idBytes, { encoding: entry.encoding, rawLength: entry.rawLength, bytes: sealed });
  }
}

function estimateHeaders(blobs: number, bytes: number, packSize: number): number {
  if (blobs === 0) return 0;
  const packsNeeded = Math.max(1, Math.ceil(bytes / packSize));
  return blobs * PACK_ENTRY_BYTES + packsNeeded * 64;
}

async function deleteAll(store: Store, names: string[], onProgress: (done: number, total: number) => void): Promise<void> {
  let done = 0;
  let next = 0;
  onProgress(0, names.length);
  const worker = async () => {
    while (next < names.length) {
      await store.backend.delete(names[next++]!);
      onProgress(++done, names.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, names.length) }, worker));
}
