import { listAll, type ObjectInfo } from '../backend/storage-backend.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { BlobType } from '../format/blob-codec.ts';
import { packObjectName } from '../format/pack-format.ts';
import { FileKind } from '../format/sealed-file.ts';
import type { Snapshot, SnapshotRecord } from '../snapshot/snapshot.ts';
import type { Tree } from '../snapshot/tree.ts';
import { indexEntryOf, type IndexEntry, type IndexFileContent } from '../store/master-index.ts';
import type { Store } from '../store/store.ts';

/**
 * Building blocks shared by check and prune: they read the store object by object so that one
 * damaged object is reported (check) or refused (prune) by name instead of failing a whole listing.
 * They never use `store.index` (the Store's in-memory index): check must see every index file's
 * view, and prune must not depend on what a caller loaded earlier.
 */

/** Damage to store content (reported by check) as opposed to an environmental failure (thrown). */
export function isDamage(err: unknown): boolean {
  if (err instanceof ArcaError) {
    return err.code === ArcaErrorCode.CorruptObject || err.code === ArcaErrorCode.BlobNotFound || err.code === ArcaErrorCode.UnsupportedFormat;
  }
  if (err instanceof SyntaxError) return true; // authenticated but not JSON: forged or written by a bug
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // zlib / zstd failures on (authenticated, so only forged or buggy) content
  return typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ERR_ZLIB') || code.startsWith('ERR_ZSTD') || code === 'ERR_BUFFER_TOO_LARGE');
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface LoadedIndexFile {
  /** object name, `index/<id>` */
  name: string;
  content: IndexFileContent;
}

export interface ScannedIndex {
  files: LoadedIndexFile[];
  /** index files that could not be read or parsed */
  failed: { name: string; error: unknown }[];
  /** pack ID -> blob ID -> entry: the union of every readable index file */
  packs: Map<string, Map<string, IndexEntry>>;
  /** blob ID -> every known location (more than one when a blob is stored twice) */
  blobs: Map<string, IndexEntry[]>;
}

function entriesOf(content: IndexFileContent, what: string): { packId: string; id: string; entry: IndexEntry }[] {
  if (content === null || typeof content !== 'object' || content.version !== 1 || !Array.isArray(content.packs)) {
    throw new ArcaError(ArcaErrorCode.CorruptObject, `${what} is not a valid index`);
  }
  const out: { packId: string; id: string; entry: IndexEntry }[] = [];
  for (const pack of content.packs) {
    if (typeof pack?.id !== 'string' || !/^[0-9a-f]{64}$/.test(pack.id) || !Array.isArray(pack.blobs)) {
      throw new ArcaError(ArcaErrorCode.CorruptObject, `${what} has an invalid pack entry`);
    }
    for (const b of pack.blobs) {
      if (
        typeof b?.id !== 'string' ||
        !/^[0-9a-f]{64}$/.test(b.id) ||
        (b.type !== 'data' && b.type !== 'tree') ||
        (b.encoding !== 'raw' && b.encoding !== 'zstd') ||
        !Number.isSafeInteger(b.offset) ||
        !Number.isSafeInteger(b.length) ||
        !Number.isSafeInteger(b.rawLength)
      ) {
        throw new ArcaError(ArcaErrorCode.CorruptObject, `${what} has an invalid blob entry in pack ${pack.id.slice(0, 12)}`);
      }
      out.push({ packId: pack.id, id: b.id, entry: indexEntryOf(pack.id, b) });
    }
  }
  return out;
}

/** Read every index file on its own; damaged ones go to `failed`, environmental errors throw. */
export async function scanIndex(store: Store, onFile?: (done: number, total: number) => void): Promise<ScannedIndex> {
  const objs = (await listAll(store.backend, 'index/')).sort((a, b) => a.name.localeCompare(b.name));
  const result: ScannedIndex = { files: [], failed: [], packs: new Map(), blobs: new Map() };
  const loaded: ({ file: LoadedIndexFile; entries: ReturnType<typeof entriesOf> } | undefined)[] = new Array(objs.length);
  let done = 0;
  await runParallel(objs, 8, async (obj, i) => {
    try {
      const content = await store.readSealedFile<IndexFileContent>(obj.name, FileKind.Index);
      loaded[i] = { file: { name: obj.name, content }, entries: entriesOf(content, obj.name) };
    } catch (err) {
      if (!isDamage(err)) throw err;
      result.failed.push({ name: obj.name, error: err });
    }
    onFile?.(++done, objs.length);
  });
  // merge in listing order so the result does not depend on download timing
  for (const l of loaded) {
    if (!l) continue;
    result.files.push(l.file);
    for (const { packId, id, entry } of l.entries) {
      let pack = result.packs.get(packId);
      if (!pack) result.packs.set(packId, (pack = new Map()));
      if (pack.has(id)) continue; // the same pack described by two index files (e.g. after an interrupted prune)
      pack.set(id, entry);
      const locs = result.blobs.get(id);
      if (locs) locs.push(entry);
      else result.blobs.set(id, [entry]);
    }
  }
  result.failed.sort((a, b) => a.name.localeCompare(b.name));
  return result;
}

export const PACK_NAME_RE = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** `packs/` listed once: pack ID -> size, plus objects that are not validly named packs. */
export async function listPacks(store: Store): Promise<{ packs: Map<string, number>; strays: ObjectInfo[] }> {
  const packs = new Map<string, number>();
  const strays: ObjectInfo[] = [];
  for (const obj of await listAll(store.backend, 'packs/')) {
    const m = PACK_NAME_RE.exec(obj.name);
    if (m && m[2]!.startsWith(m[1]!)) packs.set(m[2]!, obj.size);
    else strays.push(obj);
  }
  return { packs, strays };
}

/** Every `snapshots/<id>` read on its own. */
export async function scanSnapshots(store: Store): Promise<{ snapshots: SnapshotRecord[]; failed: { id: string; error: unknown }[] }> {
  const objs = await listAll(store.backend, 'snapshots/');
  const snapshots: SnapshotRecord[] = [];
  const failed: { id: string; error: unknown }[] = [];
  await runParallel(objs, 8, async (obj) => {
    const id = obj.name.slice('snapshots/'.length);
    try {
      const snapshot = await store.readSealedFile<Snapshot>(obj.name, FileKind.Snapshot);
      if (snapshot === null || typeof snapshot !== 'object' || snapshot.version !== 1 || typeof snapshot.tree !== 'string' || typeof snapshot.time !== 'string') {
        throw new ArcaError(ArcaErrorCode.CorruptObject, `snapshot ${id.slice(0, 8)} is not a valid snapshot`);
      }
      snapshots.push({ id, snapshot });
    } catch (err) {
      if (!isDamage(err)) throw err;
      failed.push({ id, error: err });
    }
  });
  snapshots.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
  failed.sort((a, b) => a.id.localeCompare(b.id));
  return { snapshots, failed };
}

/**
 * Read and parse a tree blob from any of its locations (the first one that is intact wins), without
 * the Store's in-memory index. Damage is thrown as an ArcaError(CORRUPT_OBJECT / BLOB_NOT_FOUND).
 */
export async function readTreeAt(store: Store, id: string, locations: readonly IndexEntry[] | undefined): Promise<{ tree: Tree; bytes: number }> {
  if (!locations || locations.length === 0) {
    throw new ArcaError(ArcaErrorCode.BlobNotFound, `tree ${id.slice(0, 12)} is not in the index`);
  }
  let lastError: unknown;
  for (const entry of locations) {
    if (entry.type !== BlobType.Tree) {
      lastError = new ArcaError(ArcaErrorCode.CorruptObject, `blob ${id.slice(0, 12)} is a data blob, but is referenced as a tree`);
      continue;
    }
    try {
      const sealed = await store.backend.getRange(packObjectName(entry.packId), entry.offset, entry.length);
      const plain = await store.openSealedBlob(id, entry, sealed);
      const tree = JSON.parse(plain.toString('utf8')) as Tree;
      if (tree === null || typeof tree !== 'object' || tree.version !== 1 || !Array.isArray(tree.nodes)) {
        throw new ArcaError(ArcaErrorCode.CorruptObject, `tree ${id.slice(0, 12)} is not a valid tree`);
      }
      return { tree, bytes: sealed.length };
    } catch (err) {
      if (!isDamage(err)) throw err;
      lastError = err;
    }
  }
  throw lastError instanceof ArcaError ? lastError : new ArcaError(ArcaErrorCode.CorruptObject, `tree ${id.slice(0, 12)} is damaged (${errorMessage(lastError)})`, { cause: lastError });
}

/** Run `fn` over items with at most `limit` in flight; the first error stops new work and is thrown. */
export async function runParallel<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Breadth-first traversal of a graph discovered while walking (trees): `visit` returns the children
 * to enqueue. Each key is visited once. At most `limit` visits run at a time.
 */
export async function traverse(
  roots: Iterable<string>,
  limit: number,
  visit: (key: string) => Promise<Iterable<string>>,
  onVisited?: (done: number, discovered: number) => void,
): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue: string[] = [];
  let head = 0;
  for (const r of roots) {
    if (!seen.has(r)) {
      seen.add(r);
      queue.push(r);
    }
  }
  let active = 0;
  let visited = 0;
  let failure: { err: unknown } | undefined;
  await new Promise<void>((resolve, reject) => {
    const pump = () => {
      if (failure) {
        if (active === 0) reject(failure.err);
        return;
      }
      while (active < limit && head < queue.length) {
        const key = queue[head++]!;
        active++;
        visit(key).then(
          (children) => {
            active--;
            for (const c of children) {
              if (!seen.has(c)) {
                seen.add(c);
                queue.push(c);
              }
            }
            onVisited?.(++visited, seen.size);
            pump();
          },
          (err: unknown) => {
            active--;
            failure ??= { err };
            pump();
          },
        );
      }
      if (active === 0 && head === queue.length) resolve();
    };
    pump();
  });
  return seen;
}
