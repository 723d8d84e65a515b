import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FsBackend, Store, type ChunkerParams } from '../../src/index.ts';

/** Cheap Argon2id for tests (the minimum the crypto lib accepts). */
export const TEST_KDF = { memoryKiB: 8192, iterations: 1, parallelism: 1 };
/** Small chunks and packs, so small fixtures exercise multi-chunk files and many packs. */
export const SMALL_CHUNKER: ChunkerParams = { algorithm: 'fastcdc-v1', minSize: 1024, avgSize: 4096, maxSize: 16384, normalization: 2 };

export function tempDir(prefix = 'arca-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function newStore(dir: string, options: { small?: boolean; passphrase?: string } = {}): Promise<Store> {
  return Store.init(new FsBackend(dir), {
    passphrase: options.passphrase ?? 'correct horse battery staple',
    kdf: TEST_KDF,
    ...(options.small ? { chunker: SMALL_CHUNKER, packSize: 64 * 1024 } : {}),
  });
}

export async function reopen(dir: string, passphrase = 'correct horse battery staple'): Promise<Store> {
  return Store.open(new FsBackend(dir), { passphrase });
}

export interface EntryFacts {
  type: string;
  mode: number;
  size: number;
  /** microseconds: restores are exact to the µs (utimes takes a double) */
  mtimeUs: bigint;
  content?: string;
  target?: string;
  nlink: number;
}

/** Everything a restore must reproduce, keyed by path relative to root (raw names as latin1). */
export function describeTree(root: string): Map<string, EntryFacts> {
  const out = new Map<string, EntryFacts>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = `${rel}/${name.toString('latin1')}`;
      const st = lstatSync(full);
      const big = lstatSync(full, { bigint: true });
      const facts: EntryFacts = { type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other', mode: st.mode & 0o7777, size: st.isDirectory() ? 0 : st.size, mtimeUs: big.mtimeNs / 1000n, nlink: st.isDirectory() ? 0 : st.nlink };
      if (st.isFile()) facts.content = readFileSync(full).toString('base64');
      if (st.isSymbolicLink()) facts.target = readlinkSync(full, { encoding: 'buffer' }).toString('latin1');
      out.set(r, facts);
      if (st.isDirectory()) walk(full, r);
    }
  };
  walk(Buffer.from(root), '');
  return out;
}
