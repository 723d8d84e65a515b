import { readFile, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { check } from '../src/check/checker.ts';
import { ArcaErrorCode } from '../src/errors/arca-error.ts';
import { forget } from '../src/retention/forget-policy.ts';
import { prune, type PruneStep } from '../src/retention/pruner.ts';
import { restore } from '../src/restore/restorer.ts';
import type { SnapshotRecord } from '../src/snapshot/snapshot.ts';
import { listSnapshots } from '../src/snapshot/snapshot-io.ts';
import { findNode } from '../src/snapshot/tree-io.ts';
import { acquireLock } from '../src/store/lock-manager.ts';
import type { Store } from '../src/store/store.ts';
import { bytesUnder, hashTree, initStore, objectNames, openStore, packPath, random, restoreHashes, snap, TempDirs, writeFiles } from './maintenance-fixture.ts';

const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

interface State {
  rec: SnapshotRecord;
  hashes: Map<string, string>;
}

/**
 * Three snapshots of a changing tree (~1 MiB, 64 KiB packs): most data of the first two is gone
 * from the third, so forgetting them leaves unused, partly used and fully used packs.
 */
async function history() {
  const storeDir = await dirs.make('arca-prune-store-');
  const src = await dirs.make('arca-prune-src-');
  const store = await initStore(storeDir);
  const states: State[] = [];
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 12; i++) files[`stable/s${i}.bin`] = random(20_000 + i * 1000);
  for (let i = 0; i < 12; i++) files[`v1/f${i}.bin`] = random(25_000);
  await writeFiles(src, files);
  states.push({ rec: await snap(store, src), hashes: await hashTree(src) });
  await rm(path.join(src, 'v1'), { recursive: true });
  const v2: Record<string, Buffer> = {};
  for (let i = 0; i < 10; i++) v2[`v2/g${i}.bin`] = random(30_000);
  await writeFiles(src, v2);
  states.push({ rec: await snap(store, src), hashes: await hashTree(src) });
  // remove half of v2: the packs holding v2 become partly used
  for (let i = 0; i < 10; i += 2) await unlink(path.join(src, `v2/g${i}.bin`));
  await writeFiles(src, { 'v3/h.bin': random(50_000) });
  states.push({ rec: await snap(store, src), hashes: await hashTree(src) });
  return { storeDir, src, store, states };
}

async function expectRestores(store: Store, src: string, states: State[]): Promise<void> {
  for (const s of states) {
    const r = await restoreHashes(store, dirs, s.rec, src);
    expect(r.warnings).toEqual([]);
    expect(r.hashes).toEqual(s.hashes);
  }
}

async function expectCheckPasses(storeDir: string): Promise<string[]> {
  const r = await check(await openStore(storeDir), { readData: true });
  expect(r.errors).toEqual([]);
  expect(r.ok).toBe(true);
  return r.unreferencedPacks;
}

describe('prune', () => {
  it('frees the space of forgotten snapshots; what is kept restores byte-identically', async () => {
    const { storeDir, src, store, states } = await history();
    await forget(store, { keepLast: 1 });
    const packsBefore = await bytesUnder(storeDir, 'packs');
    const phases = new Set<string>();
    const r = await prune(store, { maxUnusedPercent: 0, onProgress: (p) => phases.add(p.phase) });
    expect(r.dryRun).toBe(false);
    expect(r.packsDeleted).toBeGreaterThan(0);
    expect(r.packsRepacked).toBeGreaterThan(0);
    expect(r.blobsRemoved).toBeGreaterThan(0);
    expect(r.bytesRepacked).toBeGreaterThan(0);
    expect(r.unusedBytesAfter).toBe(0);
    expect(r.missingPacks).toEqual([]);
    expect(phases.has('repack') && phases.has('delete-packs')).toBe(true);
    const packsAfter = await bytesUnder(storeDir, 'packs');
    expect(packsAfter).toBeLessThan(packsBefore);
    expect(packsAfter).toBe(packsBefore - r.bytesFreed);
    // about 12 stable files + 5 v2 files + v3 remain: less than half of what was stored
    expect(packsAfter).toBeLessThan(packsBefore * 0.6);
    expect(await expectCheckPasses(storeDir)).toEqual([]);
    await expectRestores(await openStore(storeDir), src, [states[2]!]);
    // a second prune has nothing to do
    const again = await prune(store, { maxUnusedPercent: 0 });
    expect([again.packsDeleted, again.packsRepacked, again.blobsRemoved]).toEqual([0, 0, 0]);
    expect(await objectNames(storeDir, 'locks')).toEqual([]);
  });

  it('keeps every blob of the snapshots that remain', async () => {
    const { storeDir, src, store, states } = await history();
    // forget only the middle snapshot
    await rm(path.join(storeDir, 'snapshots', states[1]!.rec.id));
    await prune(store, { maxUnusedPercent: 0 });
    await expectCheckPasses(storeDir);
    await expectRestores(await openStore(storeDir), src, [states[0]!, states[2]!]);
  });

  it('tolerates unused space up to maxUnusedPercent and deletes whole unused packs anyway', async () => {
    const { storeDir, src, store, states } = await history();
    await forget(store, { keepLast: 1 });
    const r = await prune(store, { maxUnusedPercent: 100 });
    expect(r.packsRepacked).toBe(0);
    expect(r.packsDeleted).toBeGreaterThan(0);
    expect(r.unusedBytesAfter).toBeGreaterThan(0);
    await expectCheckPasses(storeDir);
    await expectRestores(store, src, [states[2]!]);
    // now allow none: the partly used packs go
    const r2 = await prune(store, { maxUnusedPercent: 0 });
    expect(r2.packsRepacked).toBeGreaterThan(0);
    expect(r2.packsDeleted).toBe(0);
    expect(r2.unusedBytesAfter).toBe(0);
    await expectCheckPasses(storeDir);
    await expectRestores(store, src, [states[2]!]);
  });

  it('a dry run changes nothing and predicts the real run', async () => {
    const { storeDir, store } = await history();
    await forget(store, { keepLast: 1 });
    const before = [...(await objectNames(storeDir, 'packs')), ...(await objectNames(storeDir, 'index'))];
    const dry = await prune(store, { dryRun: true, maxUnusedPercent: 0 });
    expect(dry.dryRun).toBe(true);
    expect([...(await objectNames(storeDir, 'packs')), ...(await objectNames(storeDir, 'index'))]).toEqual(before);
    const real = await prune(store, { maxUnusedPercent: 0 });
    const { bytesFreed: dryFreed, dryRun: _d, ...dryRest } = dry;
    const { bytesFreed: realFreed, dryRun: _r, ...realRest } = real;
    expect(dryRest).toEqual(realRest);
    expect(Math.abs(dryFreed - realFreed)).toBeLessThan(realFreed * 0.05);
  });

  it('refuses while a backup holds a shared lock (a dry run is allowed)', async () => {
    const { storeDir, store } = await history();
    const backupLock = await acquireLock(store, false, 'backup');
    const packs = await objectNames(storeDir, 'packs');
    try {
      await expect(prune(store)).rejects.toMatchObject({ code: ArcaErrorCode.Locked });
      // a dry run changes nothing, so it may look while the backup runs
      const dry = await prune(await openStore(storeDir), { dryRun: true });
      expect(dry.dryRun).toBe(true);
    } finally {
      await backupLock.release();
    }
    expect(await objectNames(storeDir, 'packs')).toEqual(packs);
    // and a backup cannot start while prune runs
    const pruneLock = await acquireLock(store, true, 'prune');
    try {
      await expect(snap(store, storeDir)).rejects.toMatchObject({ code: ArcaErrorCode.Locked });
    } finally {
      await pruneLock.release();
    }
  });

  it('deletes packs that no index references (left by an interrupted backup)', async () => {
    const { storeDir, src, store, states } = await history();
    const stray = 'ab' + '0'.repeat(62);
    await writeFiles(storeDir, { [`packs/ab/${stray}`]: random(5000) });
    expect((await check(store)).unreferencedPacks).toEqual([stray]);
    const r = await prune(store);
    expect(r.unreferencedPacks).toBe(1);
    expect(r.packsDeleted).toBe(1);
    expect(r.packsRepacked).toBe(0);
    expect(await objectNames(storeDir, 'packs')).not.toContain(`packs/ab/${stray}`);
    await expectCheckPasses(storeDir);
    await expectRestores(store, src, states);
  });

  it('refuses to run on a store with a damaged index file, deleting nothing', async () => {
    const { storeDir, store } = await history();
    await forget(store, { keepLast: 1 });
    const [indexFile] = await objectNames(storeDir, 'index');
    await writeFiles(storeDir, { [indexFile!]: random(300) });
    const packs = await objectNames(storeDir, 'packs');
    await expect(prune(store)).rejects.toMatchObject({ code: ArcaErrorCode.CorruptObject, message: expect.stringMatching(/refuses/) });
    expect(await objectNames(storeDir, 'packs')).toEqual(packs);
  });

  it('keeps index entries of a missing pack and reports it', async () => {
    const { storeDir, src, store, states } = await history();
    await forget(store, { keepLast: 1 });
    await store.loadIndex();
    // a data pack the remaining snapshot needs
    const node = await findNode(store, states[2]!.rec.snapshot.tree, path.join(src, 'v3/h.bin'));
    const lost = store.index.get(node!.content![0]!)!.packId;
    await rm(packPath(storeDir, lost));
    const r = await prune(store, { maxUnusedPercent: 0 });
    expect(r.missingPacks).toEqual([lost]);
    expect(r.packsDeleted).toBeGreaterThan(0);
    // its entries are still indexed: check still names the pack and the file
    const c = await check(await openStore(storeDir));
    expect(c.errors.filter((e) => e.kind === 'pack-missing').map((e) => e.pack)).toEqual([lost]);
    expect(c.damagedBlobs.flatMap((d) => d.files.map((f) => f.path))).toContain(path.join(src, 'v3/h.bin'));
  });

  describe('crash safety', () => {
    const steps: PruneStep[] = ['repacked', 'index-written', 'old-index-deleted', 'packs-deleted'];
    for (const step of steps) {
      it(`leaves a valid store when interrupted after "${step}", and a re-run completes`, async () => {
        const { storeDir, src, store, states } = await history();
        await forget(store, { keepLast: 1 });
        const oldIndex = await objectNames(storeDir, 'index');
        const crash = new Error(`simulated crash after ${step}`);
        await expect(
          prune(store, {
            maxUnusedPercent: 0,
            afterStep: (s) => {
              if (s === step) throw crash;
            },
          }),
        ).rejects.toBe(crash);
        const indexNow = await objectNames(storeDir, 'index');
        if (step === 'repacked' || step === 'index-written') {
          // old index files are all still there, next to the new ones
          expect(indexNow.filter((n) => oldIndex.includes(n))).toEqual(oldIndex);
          expect(indexNow.length).toBeGreaterThan(oldIndex.length);
        } else {
          expect(indexNow.filter((n) => oldIndex.includes(n))).toEqual([]);
        }

        // a crashed prune leaves a store that passes check and restores, from a fresh process' view
        await expectCheckPasses(storeDir);
        await expectRestores(await openStore(storeDir), src, [states[2]!]);

        // re-running finishes the job
        const packsBefore = await bytesUnder(storeDir, 'packs');
        await prune(await openStore(storeDir), { maxUnusedPercent: 0 });
        expect(await bytesUnder(storeDir, 'packs')).toBeLessThanOrEqual(packsBefore);
        expect(await expectCheckPasses(storeDir)).toEqual([]);
        await expectRestores(await openStore(storeDir), src, [states[2]!]);
        const final = await prune(await openStore(storeDir), { maxUnusedPercent: 0 });
        expect([final.packsDeleted, final.packsRepacked]).toEqual([0, 0]);
      });
    }

    it('a backup between an interrupted prune and its re-run may reuse blobs of packs due for deletion', async () => {
      const { storeDir, src, store } = await history();
      // v1 files are only in the first snapshot: forgetting it makes their packs unused
      const v1 = Object.fromEntries(
        await Promise.all(
          Array.from({ length: 3 }, async (_, i) => {
            const name = `v1/f${i}.bin`;
            return [name, await restoredContent(store, src, name)] as const;
          }),
        ),
      );
      await forget(store, { keepLast: 1 });
      await expect(
        prune(store, {
          maxUnusedPercent: 0,
          afterStep: (s) => {
            if (s === 'index-written') throw new Error('crash');
          },
        }),
      ).rejects.toThrow('crash');
      // the old index files (still present) list the v1 blobs: this backup deduplicates against them
      await writeFiles(src, v1);
      const other = await openStore(storeDir);
      const s4 = await snap(other, src);
      expect(s4.snapshot.summary!.dataBlobsNew).toBe(0);
      const expected = await hashTree(src);
      await prune(await openStore(storeDir), { maxUnusedPercent: 0 });
      expect(await expectCheckPasses(storeDir)).toEqual([]);
      await expectRestores(await openStore(storeDir), src, [{ rec: s4, hashes: expected }]);
    });
  });

  it('a Store used for backups after prune forgets the blobs prune removed', async () => {
    const { storeDir, src, store } = await history();
    const content = await restoredContent(store, src, 'v1/f0.bin');
    await forget(store, { keepLast: 1 });
    const r = await prune(store, { maxUnusedPercent: 0 });
    expect(r.blobsRemoved).toBeGreaterThan(0);
    // the same content again, through the same Store object that has seen the old index
    await writeFiles(src, { 'v1/f0.bin': content });
    const s = await snap(store, src);
    expect(s.snapshot.summary!.dataBlobsNew).toBeGreaterThan(0);
    const expected = await hashTree(src);
    expect(await expectCheckPasses(storeDir)).toEqual([]);
    await expectRestores(await openStore(storeDir), src, [{ rec: s, hashes: expected }]);
  });
});

/** Content of a file as in the first snapshot (read back by restoring it). */
async function restoredContent(store: Store, src: string, rel: string): Promise<Buffer> {
  const first = (await listSnapshots(store))[0]!;
  const target = await dirs.make('arca-restore-one-');
  await restore(store, first, { target, subPath: path.join(src, rel) });
  return readFile(path.join(target, path.basename(rel)));
}
