import { open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsBackend } from '../src/backend/fs-backend.ts';
import { check } from '../src/check/checker.ts';
import { ArcaError, ArcaErrorCode } from '../src/errors/arca-error.ts';
import { BlobType } from '../src/format/blob-codec.ts';
import { acquireLock } from '../src/store/lock-manager.ts';
import { Store } from '../src/store/store.ts';
import { findNode } from '../src/snapshot/tree-io.ts';
import { bytesUnder, hashTree, initStore, objectNames, packPath, PASSPHRASE, random, restoreHashes, snap, TempDirs, writeFiles } from './maintenance-fixture.ts';

const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

/** A store with two snapshots of a small tree; `victim.bin` is unique data, `keep/` is not touched. */
async function fixture() {
  const storeDir = await dirs.make('arca-check-store-');
  const src = await dirs.make('arca-check-src-');
  const store = await initStore(storeDir);
  await writeFiles(src, {
    'keep/a.bin': random(40_000),
    'keep/b.txt': 'hello world\n'.repeat(500),
    'keep/deep/c.bin': random(70_000),
    'victim.bin': random(3000),
    'other.bin': random(25_000),
  });
  const s1 = await snap(store, src);
  await writeFiles(src, { 'later.bin': random(30_000) });
  const s2 = await snap(store, src);
  return { storeDir, src, store, s1, s2 };
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] = b[0]! ^ 0x40;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

describe('check', () => {
  it('passes on a clean store, with and without reading data', async () => {
    const { storeDir, store } = await fixture();
    const phases = new Set<string>();
    const r = await check(store, { onProgress: (p) => phases.add(p.phase) });
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.unreferencedPacks).toEqual([]);
    expect(r.damagedBlobs).toEqual([]);
    expect(r.stats.snapshots).toBe(2);
    expect(r.stats.trees).toBeGreaterThan(3);
    expect(r.stats.packs).toBe((await objectNames(storeDir, 'packs')).length);
    expect(r.stats.bytesRead).toBe(0);
    expect(phases).toEqual(new Set(['index', 'packs', 'snapshots', 'trees']));

    const full = await check(store, { readData: true });
    expect(full.errors).toEqual([]);
    expect(full.ok).toBe(true);
    expect(full.stats.bytesRead).toBe(await bytesUnder(storeDir, 'packs'));
    // check leaves no lock behind
    expect(await objectNames(storeDir, 'locks')).toEqual([]);
  });

  it('read-data names exactly the damaged blob and every file using it; other files still restore', async () => {
    const { storeDir, src, store, s1, s2 } = await fixture();
    await store.loadIndex();
    const victimPath = path.join(src, 'victim.bin');
    const victim = await findNode(store, s1.snapshot.tree, victimPath);
    const blob = victim!.content![0]!;
    const entry = store.index.get(blob)!;
    expect(entry.type).toBe(BlobType.Data);
    await flipByte(packPath(storeDir, entry.packId), entry.offset + Math.floor(entry.length / 2));

    // the structure check does not read pack contents
    const structural = await check(store);
    expect(structural.ok).toBe(true);

    const r = await check(await Store.open(new FsBackend(storeDir), { passphrase: PASSPHRASE }), { readData: true });
    expect(r.ok).toBe(false);
    expect(r.damagedBlobs).toHaveLength(1);
    const d = r.damagedBlobs[0]!;
    expect(d.id).toBe(blob);
    expect(d.type).toBe('data');
    expect(d.pack).toBe(entry.packId);
    expect(d.reason).toMatch(/authentication failed/);
    expect(d.files).toEqual(
      [
        { snapshot: s1.id, path: victimPath },
        { snapshot: s2.id, path: victimPath },
      ].sort((a, b) => a.snapshot.localeCompare(b.snapshot)),
    );
    expect(r.errors.map((e) => e.kind).sort()).toEqual(['blob-damaged', 'pack-hash']);
    expect(r.errors.find((e) => e.kind === 'blob-damaged')!.blob).toBe(blob);
    expect(r.errors.every((e) => e.pack === entry.packId)).toBe(true);

    // an unaffected file restores byte-identically (even if it shares the damaged pack)
    const keepHashes = await hashTree(path.join(src, 'keep'));
    const restored = await restoreHashes(store, dirs, s2, path.join(src, 'keep'));
    expect(restored.warnings).toEqual([]);
    expect(restored.hashes).toEqual(keepHashes);
    // the damaged file is reported by restore, not silently written
    const all = await restoreHashes(store, dirs, s2, src);
    expect(all.warnings.map((w) => path.basename(w.path))).toEqual(['victim.bin']);
  });

  it('finds a deleted data pack in the structure check and names the files using it', async () => {
    const { storeDir, src, store, s1, s2 } = await fixture();
    await store.loadIndex();
    const node = await findNode(store, s2.snapshot.tree, path.join(src, 'later.bin'));
    const packId = store.index.get(node!.content![0]!)!.packId;
    await rm(packPath(storeDir, packId));

    const r = await check(store);
    expect(r.ok).toBe(false);
    expect(r.errors.filter((e) => e.kind === 'pack-missing').map((e) => e.pack)).toEqual([packId]);
    const laterBlobs = new Set(node!.content!);
    const inPack = r.damagedBlobs.filter((d) => laterBlobs.has(d.id));
    expect(inPack.length).toBeGreaterThan(0);
    for (const d of r.damagedBlobs) {
      expect(d.pack).toBe(packId);
      expect(d.reason).toBe('its pack is missing');
      expect(d.files.length).toBeGreaterThan(0);
    }
    expect(inPack[0]!.files).toContainEqual({ snapshot: s2.id, path: path.join(src, 'later.bin') });
    // later.bin exists only in s2
    expect(inPack.flatMap((d) => d.files).some((f) => f.snapshot === s1.id && f.path.endsWith('later.bin'))).toBe(false);
  });

  it('reports a missing tree pack with the snapshots that reference the trees', async () => {
    const { storeDir, store, s1, s2 } = await fixture();
    await store.loadIndex();
    const rootEntry = store.index.get(s1.snapshot.tree)!;
    expect(rootEntry.type).toBe(BlobType.Tree);
    await rm(packPath(storeDir, rootEntry.packId));
    const r = await check(store);
    expect(r.ok).toBe(false);
    const rootDamage = r.damagedBlobs.find((d) => d.id === s1.snapshot.tree)!;
    expect(rootDamage.type).toBe('tree');
    expect(rootDamage.files).toContainEqual({ snapshot: s1.id, path: '/' });
    const treeErrors = r.errors.filter((e) => e.kind === 'tree');
    expect(treeErrors.some((e) => e.blob === s1.snapshot.tree && e.message.includes(s1.id.slice(0, 8)))).toBe(true);
    // every damaged tree is tied to at least one snapshot
    for (const d of r.damagedBlobs.filter((x) => x.type === 'tree')) {
      expect(d.files.length).toBeGreaterThan(0);
      for (const f of d.files) expect([s1.id, s2.id]).toContain(f.snapshot);
    }
  });

  it('reports unreferenced packs as information, not errors', async () => {
    const { storeDir, store } = await fixture();
    const fake = 'ab' + 'c'.repeat(62);
    await writeFiles(storeDir, { [`packs/ab/${fake}`]: random(1000) });
    const r = await check(store);
    expect(r.ok).toBe(true);
    expect(r.unreferencedPacks).toEqual([fake]);
  });

  it('reports damaged index and snapshot files instead of throwing', async () => {
    const { storeDir, store, s1 } = await fixture();
    const [indexFile] = await objectNames(storeDir, 'index');
    await flipByte(path.join(storeDir, indexFile!), 40);
    await writeFile(path.join(storeDir, 'snapshots', s1.id), random(200));
    const r = await check(store);
    expect(r.ok).toBe(false);
    expect(r.errors.some((e) => e.kind === 'index' && e.message.includes(indexFile!))).toBe(true);
    expect(r.errors.some((e) => e.kind === 'snapshot' && e.snapshot === s1.id)).toBe(true);
    // the packs only the damaged index described are now unreferenced
    expect(r.unreferencedPacks.length).toBeGreaterThan(0);
  });

  it('reads each pack exactly once across the parts of a subset', async () => {
    const { storeDir, store } = await fixture();
    let total = 0;
    for (let n = 1; n <= 3; n++) {
      const r = await check(store, { readDataSubset: { n, of: 3 } });
      expect(r.ok).toBe(true);
      total += r.stats.bytesRead;
    }
    expect(total).toBe(await bytesUnder(storeDir, 'packs'));
    await expect(check(store, { readDataSubset: { n: 4, of: 3 } })).rejects.toMatchObject({ code: ArcaErrorCode.InvalidArgument });
  });

  it('throws for environmental failures and when prune holds the lock', async () => {
    const { storeDir, store } = await fixture();
    const backend = new FsBackend(storeDir);
    const broken = await Store.open(backend, { passphrase: PASSPHRASE });
    backend.getRange = async () => {
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    };
    await expect(check(broken)).rejects.toThrow(/ECONNREFUSED/);

    const lock = await acquireLock(store, true, 'prune');
    try {
      await expect(check(store)).rejects.toSatisfy((e: unknown) => e instanceof ArcaError && e.code === ArcaErrorCode.Locked);
    } finally {
      await lock.release();
    }
  });

  it('reports a tree referencing a blob that is in no index', async () => {
    const { storeDir, store, s1 } = await fixture();
    // drop every index file: all blobs vanish from the index, the packs become unreferenced
    for (const f of await objectNames(storeDir, 'index')) await rm(path.join(storeDir, f));
    const r = await check(store);
    expect(r.ok).toBe(false);
    expect(r.damagedBlobs.find((d) => d.id === s1.snapshot.tree)?.reason).toMatch(/not in the index/);
    expect((await readFile(path.join(storeDir, 'config'))).length).toBeGreaterThan(0);
  });
});
