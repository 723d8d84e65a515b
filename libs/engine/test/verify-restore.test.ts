import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backup, listSnapshots, sync, verifyRestore } from '../src/index.ts';
import { newStore, tempDir } from './support/engine-fixtures.ts';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir('arca-verify-');
});
afterEach(() => tmp.cleanup());

function makeSource(root: string): number {
  mkdirSync(path.join(root, 'a/b'), { recursive: true });
  const files: [string, Buffer][] = [
    ['one.txt', Buffer.from('one\n')],
    ['a/big.bin', randomBytes(150_000)],
    ['a/b/text.txt', Buffer.from('line of text\n'.repeat(5_000))],
    ['a/empty', Buffer.alloc(0)],
    [Buffer.from([0x6e, 0xff]).toString('latin1'), Buffer.from('non-UTF-8 name')],
  ];
  let bytes = 0;
  for (const [name, content] of files) {
    writeFileSync(path.join(root, name), content);
    bytes += content.length;
  }
  writeFileSync(Buffer.from(`${root}/raw-\xff`, 'latin1'), 'raw name bytes');
  bytes += 'raw name bytes'.length;
  writeFileSync(path.join(root, 'locked'), 'mode 000');
  chmodSync(path.join(root, 'locked'), 0o000);
  return bytes + 'mode 000'.length;
}

describe('verifyRestore', () => {
  it('restores into a scratch directory, re-chunks every file and finds no mismatch; the scratch is removed', async () => {
    const src = path.join(tmp.dir, 'src');
    const bytes = makeSource(src);
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    await backup(store, { paths: [src] });
    const [snap] = await listSnapshots(store);
    const scratchParent = path.join(tmp.dir, 'scratch');
    mkdirSync(scratchParent);
    const result = await verifyRestore(store, snap!, { scratchParent });
    expect(result.mismatches).toEqual([]);
    expect(result.files).toBe(7);
    expect(result.bytes).toBe(bytes);
    expect(readdirSync(scratchParent)).toEqual([]);
  });

  it('reports a restored file that was altered (same size), one that was truncated and one that was removed', async () => {
    const src = path.join(tmp.dir, 'src');
    makeSource(src);
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    await backup(store, { paths: [src] });
    const [snap] = await listSnapshots(store);
    const result = await verifyRestore(store, snap!, {
      subPath: src,
      beforeCompare: (scratch) => {
        const big = path.join(scratch, 'a/big.bin');
        const flipped = readFileSync(big);
        flipped[100_000] = flipped[100_000]! ^ 1;
        writeFileSync(big, flipped);
        writeFileSync(path.join(scratch, 'one.txt'), 'on');
        rmSync(path.join(scratch, 'a/b/text.txt'));
      },
    });
    const byPath = Object.fromEntries(result.mismatches.map((m) => [m.path, m.reason]));
    expect(Object.keys(byPath).sort()).toEqual([`${src}/a/b/text.txt`, `${src}/a/big.bin`, `${src}/one.txt`].sort());
    expect(byPath[`${src}/a/big.bin`]).toMatch(/content differs/);
    expect(byPath[`${src}/one.txt`]).toMatch(/size 2 differs from the snapshot's 4/);
    expect(byPath[`${src}/a/b/text.txt`]).toMatch(/missing/);
  });

  it('verifies one file of a snapshot, and a snapshot copied by sync (chunked by the source store) passes', async () => {
    const src = path.join(tmp.dir, 'src');
    makeSource(src);
    const a = await newStore(path.join(tmp.dir, 'a'), { small: true, passphrase: 'pass a' });
    const b = await newStore(path.join(tmp.dir, 'b'), { small: true, passphrase: 'pass b' });
    await backup(a, { paths: [src] });
    const [snap] = await listSnapshots(a);
    const one = await verifyRestore(a, snap!, { subPath: `${src}/a/big.bin` });
    expect(one).toMatchObject({ files: 1, bytes: 150_000, mismatches: [] });

    await sync(a, b);
    const [copy] = await listSnapshots(b);
    const copied = await verifyRestore(b, copy!);
    expect(copied.mismatches).toEqual([]);
    expect(copied.files).toBe(7);
  });
});
