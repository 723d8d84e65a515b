import { createCipheriv } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArcaErrorCode, backup, backupStream, check, findNode, isArcaError, listSnapshots, resolveSnapshot, streamSourcePath, verifyRestore, type Store } from '../src/index.ts';
import { newStore, tempDir } from './support/engine-fixtures.ts';

// Stream sources (backupStream): the same chunker, dedup, compression and encryption as files.

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir('arca-stream-');
});
afterEach(() => tmp.cleanup());

/** Deterministic, incompressible bytes (AES-256-CTR of zeros under a fixed key). */
function pseudoRandom(length: number, seed: number): Buffer {
  return createCipheriv('aes-256-ctr', Buffer.alloc(32, seed), Buffer.alloc(16)).update(Buffer.alloc(length));
}

/** `data` as a stream of pieces of irregular sizes (1 byte to ~3 MiB), as a pipe delivers it. */
async function* pieces(data: Buffer): AsyncGenerator<Uint8Array> {
  let pos = 0;
  for (let i = 0; pos < data.length; i++) {
    const n = [1, 65536, 7, 3_000_001, 4096, 123_457][i % 6]!;
    yield data.subarray(pos, pos + n);
    pos += n;
    if (i % 16 === 0) await new Promise((r) => setImmediate(r));
  }
}

async function contentOf(store: Store, id: string, p: string): Promise<string[]> {
  const snap = await resolveSnapshot(store, id);
  return (await findNode(store, snap.snapshot.tree, p))!.content!;
}

describe('backupStream', () => {
  it('chunks a stream exactly as the same bytes in a file, across segments, also with the parent\'s hints', async () => {
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    // more than one 16 MiB segment, so chunks run across segment boundaries
    const data = pseudoRandom(20 * 1024 * 1024 + 777, 1);
    const file = path.join(tmp.dir, 'same.bin');
    writeFileSync(file, data);
    const fromFile = await backup(store, { paths: [file] });
    const first = await backupStream(store, { path: 'dumps/db.dump', stream: pieces(data), tags: ['t'] });
    expect(first.snapshot.paths).toEqual(['/dumps/db.dump']);
    expect(first.snapshot.tags).toEqual(['t']);
    expect(first.snapshot.summary).toMatchObject({ filesNew: 1, dirs: 1, bytesTotal: data.length, bytesRead: data.length, dataBlobsNew: 0, bytesNew: 0 });
    expect(await contentOf(store, first.id, '/dumps/db.dump')).toEqual(await contentOf(store, fromFile.id, file));

    // an edited stream: the parent (same host, same name) gives hints; the result is still plain CDC
    const edited = Buffer.concat([data.subarray(0, 9_000_000), Buffer.from('inserted bytes'), data.subarray(9_000_100)]);
    writeFileSync(file, edited);
    const editedFile = await backup(store, { paths: [file] });
    const second = await backupStream(store, { path: '/dumps/db.dump', stream: pieces(edited) });
    expect(second.snapshot.parent).toBe(first.id);
    expect(second.snapshot.summary).toMatchObject({ filesChanged: 1, dataBlobsNew: 0 });
    expect(await contentOf(store, second.id, '/dumps/db.dump')).toEqual(await contentOf(store, editedFile.id, file));

    const node = await findNode(store, second.snapshot.tree, '/dumps/db.dump');
    expect(node).toMatchObject({ type: 'file', mode: 0o600, size: edited.length, uid: process.getuid!(), gid: process.getgid!() });
    expect((await findNode(store, second.snapshot.tree, '/dumps'))).toMatchObject({ type: 'dir', mode: 0o700 });

    // a restore test (restore + re-chunk + compare) passes on stream snapshots unchanged
    const verified = await verifyRestore(store, await resolveSnapshot(store, second.id), { scratchParent: tmp.dir });
    expect(verified).toMatchObject({ files: 1, bytes: edited.length, mismatches: [] });
    expect((await check(store, { readData: true })).ok).toBe(true);
  });

  it('an empty stream is an empty file', async () => {
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    const r = await backupStream(store, { path: 'empty', stream: pieces(Buffer.alloc(0)) });
    expect(await findNode(store, r.snapshot.tree, '/empty')).toMatchObject({ type: 'file', size: 0, content: [] });
  });

  it('a failing source or a failed `finished` check saves no snapshot and leaves the store consistent', async () => {
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield pseudoRandom(300_000, 2);
      throw new Error('read failed');
    }
    await expect(backupStream(store, { path: 'a', stream: broken() })).rejects.toThrow('read failed');
    await expect(backupStream(store, {
      path: 'b', stream: pieces(pseudoRandom(500_000, 3)),
      finished: () => Promise.reject(new Error('the dump command exited with status 3')),
    })).rejects.toThrow('status 3');
    expect(await listSnapshots(store)).toEqual([]);
    const checked = await check(store, { readData: true });
    expect(checked.ok).toBe(true);
    expect(checked.unreferencedPacks).toEqual([]);
  });

  it('stops at its signal while waiting for a stream that sends nothing more', async () => {
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    const controller = new AbortController();
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield pseudoRandom(100_000, 4);
      setTimeout(() => controller.abort(), 50);
      await new Promise(() => undefined); // never resolves
    }
    const err = await backupStream(store, { path: 'stalled', stream: stalled(), signal: controller.signal }).catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.Interrupted)).toBe(true);
    expect(await listSnapshots(store)).toEqual([]);
  });

  it('names: relative names go under /, and empty, "." and ".." components are refused', () => {
    expect(streamSourcePath('db.dump')).toBe('/db.dump');
    expect(streamSourcePath('/postgres//orders.dump')).toBe('/postgres/orders.dump');
    for (const bad of ['', '/', '../x', 'a/./b', 'a/..', 'x\0y']) {
      expect(() => streamSourcePath(bad), bad).toThrow(/cannot name a backed-up stream/);
    }
  });
});
