import { FileKind } from '../format/sealed-file.ts';
import { acquireLock } from '../store/lock-manager.ts';
import { indexFileContent, type IndexEntry } from '../store/master-index.ts';
import { readPackHeader } from '../store/pack-reader.ts';
import type { Store } from '../store/store.ts';
import { checkHoldingLock, type CheckProgress, type DamagedBlob } from './checker.ts';
import { listAll } from '../backend/storage-backend.ts';
import { isDamage, listPacks, runParallel } from './store-scan.ts';

export interface RepairIndexOptions {
  dryRun?: boolean;
  onProgress?: (p: CheckProgress | { phase: 'headers'; done: number; total: number }) => void;
}

export interface RepairIndexResult {
  /** blob copies left out of the new index because check --read-data found them damaged */
  removed: DamagedBlob[];
  /** packs whose header could not be read: none of their blobs are indexed any more */
  unreadablePacks: string[];
  /** blobs in the new index */
  blobsIndexed: number;
  packsIndexed: number;
  /** old index files replaced by the new one (0 on a dry run) */
  indexFilesReplaced: number;
  dryRun: boolean;
}

/**
 * Rebuild the index from the packs themselves, leaving out every blob copy that fails
 * verification. Blob IDs are content addresses, so once a damaged blob is out of the index the
 * next backup of a file that still has that content stores it again, and every older snapshot
 * that references the blob becomes whole again.
 *
 * Under an exclusive lock: (1) verify every pack and blob (check --read-data), (2) read every pack
 * header, (3) write one new index file describing the good blobs, superseding all old ones,
 * (4) delete the old index files. A crash between 3 and 4 leaves both; readers take the union,
 * which only brings back the damaged entries (run repair again).
 */
export async function repairIndex(store: Store, options: RepairIndexOptions = {}): Promise<RepairIndexResult> {
  const lock = await acquireLock(store, !options.dryRun, 'repair index');
  try {
    const report = await checkHoldingLock(store, { readData: true, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    const damaged = new Set(report.damagedBlobs.filter((b) => b.pack).map((b) => `${b.pack}:${b.id}`));

    const { packs } = await listPacks(store);
    const byPack = new Map<string, { id: string; entry: IndexEntry }[]>();
    const unreadablePacks: string[] = [];
    let done = 0;
    await runParallel([...packs], 8, async ([packId, size]) => {
      try {
        const entries = await readPackHeader(store, packId, size);
        const kept = entries
          .filter((e) => !damaged.has(`${packId}:${e.id.toString('hex')}`))
          .map((e) => ({ id: e.id.toString('hex'), entry: { packId, type: e.type, encoding: e.encoding, offset: e.offset, length: e.length, rawLength: e.rawLength } }));
        if (kept.length > 0) byPack.set(packId, kept);
      } catch (err) {
        if (!isDamage(err)) throw err;
        unreadablePacks.push(packId);
      }
      options.onProgress?.({ phase: 'headers', done: ++done, total: packs.size });
    });

    const old = (await listAll(store.backend, 'index/')).map((o) => o.name);
    const sortedPacks = new Map([...byPack].sort(([a], [b]) => a.localeCompare(b)));
    let blobsIndexed = 0;
    for (const list of sortedPacks.values()) blobsIndexed += list.length;
    if (!options.dryRun) {
      const name = `index/${await store.writeSealedFile('index', FileKind.Index, indexFileContent(sortedPacks, old.map((n) => n.slice('index/'.length))))}`;
      for (const n of old) if (n !== name) await store.backend.delete(n);
      await store.loadIndex();
    }
    return {
      removed: report.damagedBlobs.filter((b) => b.pack),
      unreadablePacks: unreadablePacks.sort(),
      blobsIndexed,
      packsIndexed: sortedPacks.size,
      indexFilesReplaced: options.dryRun ? 0 : old.length,
      dryRun: Boolean(options.dryRun),
    };
  } finally {
    await lock.release();
  }
}
