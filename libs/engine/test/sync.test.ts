import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArcaErrorCode, backup, check, isArcaError, listLocks, listSnapshots, resolveSnapshot, restore, sync, type Store } from '../src/index.ts';
import { describeTree, newStore, tempDir } from './support/engine-fixtures.ts';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir('arca-sync-');
});
afterEach(() => tmp.cleanup());

function makeSource(root: string): void {
  mkdirSync(path.join(root, 'docs/deep'), { recursive: true });
  writeFileSync(path.join(root, 'hello.txt'), 'hello, copy\n');
  writeFileSync(path.join(root, 'docs/random.bin'), randomBytes(200_000));
  writeFileSync(path.join(root, 'docs/deep/repeat.txt'), 'the same line\n'.repeat(10_000));
  writeFileSync(path.join(root, 'docs/dup.bin'), randomBytes(50_000));
  writeFileSync(path.join(root, 'empty'), '');
  symlinkSync('hello.txt', path.join(root, 'link'));
}

async function twoStores(): Promise<{ a: Store; b: Store; src: string; bDir: string }> {
  const src = path.join(tmp.dir, 'src');
  makeSource(src);
  // different passphrases, so different master keys, K_mac and chunker keys; different chunker sizes too
  const a = await newStore(path.join(tmp.dir, 'a'), { small: true, passphrase: 'first store passphrase' });
  const bDir = path.join(tmp.dir, 'b');
  const b = await newStore(bDir, { passphrase: 'second store passphrase' });
  return { a, b, src, bDir };
}

describe('sync', () => {
  it('copies snapshots between two passphrase stores; the copy restores byte-identical and checks clean with --read-data', async () => {
    const { a, b, src } = await twoStores();
    const first = await backup(a, { paths: [src], tags: ['daily'] });
    const result = await sync(a, b);
    expect(result.copied.map((c) => c.source)).toEqual([first.id]);
    expect(result.skipped).toEqual([]);
    expect(result.stats.dataBlobsCopied).toBeGreaterThan(10);

    const [copy] = await listSnapshots(b);
    expect(copy!.id).toBe(result.copied[0]!.id);
    expect(copy!.snapshot).toMatchObject({ original: first.id, paths: first.snapshot.paths, tags: ['daily'], hostname: first.snapshot.hostname, time: first.snapshot.time });
    // trees were rewritten: the blob IDs of one store mean nothing in the other
    expect(copy!.snapshot.tree).not.toBe(first.snapshot.tree);

    const out = path.join(tmp.dir, 'out');
    await restore(b, copy!, { target: out, subPath: src });
    expect(describeTree(out)).toEqual(describeTree(src));
    const report = await check(b, { readData: true });
    expect(report.errors).toEqual([]);
    expect(report.damagedBlobs).toEqual([]);
    expect(await listLocks(a)).toEqual([]);
    expect(await listLocks(b)).toEqual([]);
  });

  it('a second run copies nothing; an incremental snapshot copies only its new blobs and links its parent copy', async () => {
    const { a, b, src } = await twoStores();
    const first = await backup(a, { paths: [src] });
    const r1 = await sync(a, b);
    const packsBefore = readdirSync(path.join(tmp.dir, 'b/packs'), { recursive: true }).length;

    const again = await sync(a, b);
    expect(again.copied).toEqual([]);
    expect(again.skipped).toEqual([{ source: first.id, copy: r1.copied[0]!.id }]);
    expect(readdirSync(path.join(tmp.dir, 'b/packs'), { recursive: true }).length).toBe(packsBefore);

    appendFileSync(path.join(src, 'hello.txt'), 'one more line\n');
    const second = await backup(a, { paths: [src] });
    expect(second.snapshot.parent).toBe(first.id);
    const r2 = await sync(a, b);
    expect(r2.copied.map((c) => c.source)).toEqual([second.id]);
    expect(r2.skipped.map((s) => s.source)).toEqual([first.id]);
    // only the changed file's blob is new (the seeded mapping spares reading the unchanged ones)
    expect(r2.copied[0]!.blobsNew).toBe(1);
    expect(r2.copied[0]!.snapshot.parent).toBe(r1.copied[0]!.id);
    const out = path.join(tmp.dir, 'out2');
    await restore(b, await resolveSnapshot(b, r2.copied[0]!.id), { target: out, subPath: src });
    expect(describeTree(out)).toEqual(describeTree(src));
  });

  it('copies only the snapshots asked for, and a copy back to the first store is recognised as the original', async () => {
    const { a, b, src } = await twoStores();
    const s1 = await backup(a, { paths: [src] });
    writeFileSync(path.join(src, 'new.txt'), 'new\n');
    const s2 = await backup(a, { paths: [src] });
    const r = await sync(a, b, { snapshots: [s2.id.slice(0, 10)] });
    expect(r.copied.map((c) => c.source)).toEqual([s2.id]);
    // the copy has no parent in b (s1 was not copied)
    expect(r.copied[0]!.snapshot.parent).toBeUndefined();
    const back = await sync(b, a);
    expect(back.copied).toEqual([]);
    expect(back.skipped).toEqual([{ source: r.copied[0]!.id, copy: s2.id }]);
    expect((await listSnapshots(a)).map((s) => s.id).sort()).toEqual([s1.id, s2.id].sort());
  });

  it('an interrupted sync writes no snapshot, leaves both stores checkable, and the next sync completes without copying twice', async () => {
    const { a, b, src } = await twoStores();
    for (let i = 0; i < 40; i++) writeFileSync(path.join(src, `bulk-${i}.bin`), randomBytes(40_000));
    await backup(a, { paths: [src] });
    const controller = new AbortController();
    let copiedBefore = 0;
    const err = await sync(a, b, {
      signal: controller.signal,
      onProgress: (p) => {
        copiedBefore = p.blobsCopied;
        if (p.blobsCopied >= 60) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.Interrupted)).toBe(true);
    expect(await listSnapshots(b)).toEqual([]);
    expect(await listLocks(a)).toEqual([]);
    expect(await listLocks(b)).toEqual([]);
    for (const store of [a, b]) {
      const report = await check(store, { readData: true });
      expect(report.errors).toEqual([]);
    }
    await b.loadIndex();
    expect(b.index.size).toBe(copiedBefore); // every blob copied before the stop is indexed (trees come last)
    expect(copiedBefore).toBeGreaterThanOrEqual(60);
    const resumed = await sync(a, b);
    expect(resumed.copied).toHaveLength(1);
    // what the interrupted run stored is not stored again: together, the two runs copied each data blob once
    const dataBlobs = [...a.index.entries()].filter(([, e]) => e.type === 0).length;
    expect(copiedBefore + resumed.stats.dataBlobsCopied).toBe(dataBlobs);
    const out = path.join(tmp.dir, 'out');
    await restore(b, (await listSnapshots(b))[0]!, { target: out, subPath: src });
    expect(describeTree(out)).toEqual(describeTree(src));
    expect((await check(b, { readData: true })).errors).toEqual([]);
  });

  it('refuses to sync a store into itself', async () => {
    const { a } = await twoStores();
    const err = await sync(a, a).catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.InvalidArgument)).toBe(true);
  });
});
