import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArcaErrorCode, isArcaError } from '../src/errors/arca-error.ts';
import { listAll, type StorageBackend } from '../src/backend/storage-backend.ts';

export interface BackendFixture {
  backend: StorageBackend;
  /** closes the backend and removes whatever it stored */
  cleanup: () => Promise<void>;
}

/** Assert that `promise` rejects with an ArcaError carrying `code`. */
export async function expectArcaError(promise: Promise<unknown>, code: ArcaErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error(`expected an ArcaError ${code}, but the call succeeded`);
  if (!isArcaError(caught, code)) {
    throw new Error(`expected an ArcaError ${code}, got ${String((caught as { code?: unknown }).code ?? '')} ${String(caught)}`, {
      cause: caught,
    });
  }
}

async function names(backend: StorageBackend, prefix: string): Promise<string[]> {
  return (await listAll(backend, prefix)).map((o) => o.name).sort();
}

/**
 * The behaviour every StorageBackend must show (see storage-backend.ts). `factory` is called once
 * per test and must return an empty store.
 */
export function describeBackendConformance(name: string, factory: () => Promise<BackendFixture>): void {
  describe(`StorageBackend conformance: ${name}`, () => {
    let fixture: BackendFixture | undefined;
    let backend: StorageBackend;

    beforeEach(async () => {
      fixture = await factory();
      backend = fixture.backend;
    });

    afterEach(async () => {
      const f = fixture;
      fixture = undefined;
      if (f) await f.cleanup();
    });

    it('has a human-readable location', () => {
      expect(typeof backend.location).toBe('string');
      expect(backend.location.length).toBeGreaterThan(0);
    });

    it('round-trips binary data', async () => {
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const data = Buffer.concat([all, randomBytes(4096), Buffer.from(all).reverse()]);
      await backend.put('packs/ab/binary', data);
      const back = await backend.get('packs/ab/binary');
      expect(Buffer.isBuffer(back)).toBe(true);
      expect(back.equals(data)).toBe(true);
    });

    it('accepts a plain Uint8Array', async () => {
      const data = new Uint8Array([0, 1, 2, 250, 255]);
      await backend.put('keys/k1', data);
      expect((await backend.get('keys/k1')).equals(Buffer.from(data))).toBe(true);
    });

    it('stores an empty object', async () => {
      await backend.put('locks/empty', new Uint8Array(0));
      const back = await backend.get('locks/empty');
      expect(back.length).toBe(0);
      expect(await backend.stat('locks/empty')).toEqual({ name: 'locks/empty', size: 0 });
      expect(await listAll(backend, 'locks/')).toEqual([{ name: 'locks/empty', size: 0 }]);
    });

    it('round-trips a 5 MiB object and reads ranges of it', async () => {
      const data = randomBytes(5 * 1024 * 1024);
      await backend.put('packs/ff/big', data);
      const back = await backend.get('packs/ff/big');
      expect(back.length).toBe(data.length);
      expect(back.equals(data)).toBe(true);
      expect(await backend.stat('packs/ff/big')).toEqual({ name: 'packs/ff/big', size: data.length });
      const off = 3 * 1024 * 1024 + 17;
      expect((await backend.getRange('packs/ff/big', off, 65_536)).equals(data.subarray(off, off + 65_536))).toBe(true);
      const tail = await backend.getRange('packs/ff/big', data.length - 1000, 1000);
      expect(tail.equals(data.subarray(data.length - 1000))).toBe(true);
    });

    it('reads ranges at the start, middle and end', async () => {
      const data = randomBytes(10_000);
      await backend.put('packs/ab/ranged', data);
      expect((await backend.getRange('packs/ab/ranged', 0, 1)).equals(data.subarray(0, 1))).toBe(true);
      expect((await backend.getRange('packs/ab/ranged', 0, 100)).equals(data.subarray(0, 100))).toBe(true);
      expect((await backend.getRange('packs/ab/ranged', 4321, 1234)).equals(data.subarray(4321, 5555))).toBe(true);
      expect((await backend.getRange('packs/ab/ranged', 9_999, 1)).equals(data.subarray(9_999))).toBe(true);
      expect((await backend.getRange('packs/ab/ranged', 9_000, 1_000)).equals(data.subarray(9_000))).toBe(true);
      expect((await backend.getRange('packs/ab/ranged', 0, 10_000)).equals(data)).toBe(true);
    });

    it('fails a range read past the end with CORRUPT_OBJECT', async () => {
      const data = randomBytes(1000);
      await backend.put('packs/ab/short', data);
      await expectArcaError(backend.getRange('packs/ab/short', 900, 101), ArcaErrorCode.CorruptObject);
      await expectArcaError(backend.getRange('packs/ab/short', 0, 1001), ArcaErrorCode.CorruptObject);
      await expectArcaError(backend.getRange('packs/ab/short', 1000, 1), ArcaErrorCode.CorruptObject);
      await expectArcaError(backend.getRange('packs/ab/short', 5000, 10), ArcaErrorCode.CorruptObject);
    });

    it('fails get and getRange of a missing object with BLOB_NOT_FOUND', async () => {
      await expectArcaError(backend.get('packs/00/missing'), ArcaErrorCode.BlobNotFound);
      await expectArcaError(backend.get('missing'), ArcaErrorCode.BlobNotFound);
      await expectArcaError(backend.getRange('packs/00/missing', 0, 10), ArcaErrorCode.BlobNotFound);
      await backend.put('packs/00/present', Buffer.from('x'));
      await expectArcaError(backend.get('packs/00/missing'), ArcaErrorCode.BlobNotFound);
    });

    it('stats present and missing objects', async () => {
      await backend.put('index/i1', Buffer.from('hello world'));
      expect(await backend.stat('index/i1')).toEqual({ name: 'index/i1', size: 11 });
      expect(await backend.stat('index/nope')).toBeUndefined();
      expect(await backend.stat('nowhere/deep/nope')).toBeUndefined();
    });

    it('lists exactly the objects under a prefix, with nested prefixes', async () => {
      const objects: Record<string, number> = {
        config: 10,
        'keys/k1': 20,
        'packs/ab/p1': 30,
        'packs/ab/p2': 31,
        'packs/cd/p3': 32,
        'index/i1': 40,
        'index/i2': 41,
        'snapshots/s1': 50,
      };
      for (const [n, size] of Object.entries(objects)) await backend.put(n, randomBytes(size));

      expect(await names(backend, 'packs/')).toEqual(['packs/ab/p1', 'packs/ab/p2', 'packs/cd/p3']);
      expect(await names(backend, 'packs/ab/')).toEqual(['packs/ab/p1', 'packs/ab/p2']);
      expect(await names(backend, 'packs/cd/')).toEqual(['packs/cd/p3']);
      expect(await names(backend, 'index/')).toEqual(['index/i1', 'index/i2']);
      expect(await names(backend, 'snapshots/')).toEqual(['snapshots/s1']);
      expect(await names(backend, 'locks/')).toEqual([]);
      expect(await names(backend, 'packs/ee/')).toEqual([]);
      expect(await names(backend, '')).toEqual(Object.keys(objects).sort());

      const sized = (await listAll(backend, '')).sort((a, b) => a.name.localeCompare(b.name));
      expect(sized).toEqual(Object.entries(objects).map(([n, size]) => ({ name: n, size })).sort((a, b) => a.name.localeCompare(b.name)));
    });

    it('overwrites an existing object', async () => {
      await backend.put('config', Buffer.from('first version, rather long'));
      await backend.put('config', Buffer.from('second'));
      expect((await backend.get('config')).toString()).toBe('second');
      expect(await backend.stat('config')).toEqual({ name: 'config', size: 6 });
      expect(await listAll(backend, '')).toEqual([{ name: 'config', size: 6 }]);
      await backend.put('config', Buffer.from('third, longer than the second'));
      expect((await backend.getRange('config', 7, 6)).toString()).toBe('longer');
    });

    it('deletes objects', async () => {
      await backend.put('snapshots/s1', Buffer.from('snap'));
      await backend.put('snapshots/s2', Buffer.from('snap2'));
      await backend.delete('snapshots/s1');
      await expectArcaError(backend.get('snapshots/s1'), ArcaErrorCode.BlobNotFound);
      await expectArcaError(backend.getRange('snapshots/s1', 0, 1), ArcaErrorCode.BlobNotFound);
      expect(await backend.stat('snapshots/s1')).toBeUndefined();
      expect(await names(backend, 'snapshots/')).toEqual(['snapshots/s2']);
      expect((await backend.get('snapshots/s2')).toString()).toBe('snap2');
    });

    it('treats deleting a missing object as a no-op', async () => {
      await backend.delete('locks/never-existed');
      await backend.delete('packs/zz/never-existed');
      await backend.put('locks/l1', Buffer.from('lock'));
      await backend.delete('locks/l1');
      await backend.delete('locks/l1');
      expect(await names(backend, '')).toEqual([]);
    });
  });
}
