import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backup, check, findNode, repairIndex, resolveSnapshot, restore } from '../src/index.ts';
import { describeTree, newStore, reopen, tempDir } from './support/engine-fixtures.ts';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

describe('repair index', () => {
  it('drops damaged blobs so the next backup stores them again and old snapshots become whole', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'victim.bin'), randomBytes(60_000));
    writeFileSync(path.join(src, 'other.txt'), 'fine\n');
    const storeDir = path.join(tmp.dir, 'store');
    const store = await newStore(storeDir);
    const first = await backup(store, { paths: [src] });

    // damage the victim's blob inside its pack
    const s = await reopen(storeDir);
    await s.loadIndex();
    const blobId = (await findNode(s, first.snapshot.tree, `${src}/victim.bin`))!.content![0]!;
    const entry = s.index.get(blobId)!;
    const packFile = path.join(storeDir, 'packs', entry.packId.slice(0, 2), entry.packId);
    const bytes = readFileSync(packFile);
    bytes[entry.offset + 200]! ^= 0x55;
    writeFileSync(packFile, bytes);
    expect((await check(await reopen(storeDir), { readData: true })).damagedBlobs.map((b) => b.id)).toEqual([blobId]);

    // a dry run changes nothing
    const dry = await repairIndex(await reopen(storeDir), { dryRun: true });
    expect(dry.removed.map((b) => b.id)).toEqual([blobId]);
    expect(dry.indexFilesReplaced).toBe(0);
    expect((await check(await reopen(storeDir), {})).ok).toBe(true);

    const repaired = await repairIndex(await reopen(storeDir));
    expect(repaired.removed.map((b) => b.id)).toEqual([blobId]);
    expect(repaired.unreadablePacks).toEqual([]);
    expect(repaired.indexFilesReplaced).toBeGreaterThan(0);
    // the structure check now reports the blob as missing: the snapshot still needs it
    const missing = await check(await reopen(storeDir), {});
    expect(missing.errors.some((e) => e.blob === blobId)).toBe(true);

    // the source still has the content: the next backup stores the blob again...
    const again = await backup(await reopen(storeDir), { paths: [src] });
    expect(again.snapshot.summary!.dataBlobsNew).toBe(1);
    // ...and the first snapshot restores completely again
    const healed = await reopen(storeDir);
    const out = path.join(tmp.dir, 'out');
    const r = await restore(healed, await resolveSnapshot(healed, first.id), { target: out, subPath: src });
    expect(r.warnings).toEqual([]);
    expect(describeTree(out)).toEqual(describeTree(src));
    expect((await check(healed, {})).errors).toEqual([]);
  });
});
