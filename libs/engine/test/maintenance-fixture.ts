/**
 * Helpers for the check / forget / prune / diff / find tests: real stores on disk in temp dirs,
 * small KDF, chunker and pack parameters so that a few hundred KiB give many packs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsBackend } from '../src/backend/fs-backend.ts';
import { backup } from '../src/backup/backup-runner.ts';
import { restore } from '../src/restore/restorer.ts';
import type { SnapshotRecord } from '../src/snapshot/snapshot.ts';
import { Store } from '../src/store/store.ts';

export const PASSPHRASE = 'correct horse battery staple';
export const FAST_KDF = { memoryKiB: 8192, iterations: 1, parallelism: 1 };
export const SMALL_CHUNKER = { algorithm: 'fastcdc-v1', minSize: 1024, avgSize: 4096, maxSize: 16384, normalization: 2 } as const;

export class TempDirs {
  private readonly dirs: string[] = [];

  async make(prefix = 'arca-maint-'): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    for (const dir of this.dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  }
}

export async function initStore(storeDir: string, packSize = 65536): Promise<Store> {
  return Store.init(new FsBackend(storeDir), {
    passphrase: PASSPHRASE,
    kdf: FAST_KDF,
    chunker: { ...SMALL_CHUNKER },
    packSize,
  });
}

export async function openStore(storeDir: string): Promise<Store> {
  return Store.open(new FsBackend(storeDir), { passphrase: PASSPHRASE });
}

/** Write files (relative path -> content) under root, creating directories. */
export async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const full = path.join(root, rel);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, content);
  }
}

export function random(size: number): Buffer {
  return randomBytes(size);
}

/** relative path -> SHA-256 of content, for every regular file below root */
export async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    out.set(path.relative(root, full), createHash('sha256').update(await readFile(full)).digest('hex'));
  }
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

export async function snap(store: Store, src: string, tags?: string[]): Promise<SnapshotRecord> {
  const r = await backup(store, { paths: [src], workers: 2, ...(tags ? { tags } : {}) });
  return { id: r.id, snapshot: r.snapshot };
}

/** Restore `src` (a backed-up directory) of a snapshot into a fresh directory; returns its hashes and warnings. */
export async function restoreHashes(store: Store, dirs: TempDirs, rec: SnapshotRecord, src: string): Promise<{ hashes: Map<string, string>; warnings: { path: string; message: string }[] }> {
  const target = await dirs.make('arca-restore-');
  const r = await restore(store, rec, { target, subPath: src });
  return { hashes: await hashTree(target), warnings: r.warnings };
}

/** Total bytes of the objects under a store prefix (e.g. `packs`). */
export async function bytesUnder(storeDir: string, prefix: string): Promise<number> {
  let total = 0;
  const root = path.join(storeDir, prefix);
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true, recursive: true });
  } catch {
    return 0;
  }
  for (const e of entries) if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  return total;
}

export async function objectNames(storeDir: string, prefix: string): Promise<string[]> {
  const root = path.join(storeDir, prefix);
  try {
    const entries = await readdir(root, { withFileTypes: true, recursive: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => path.relative(storeDir, path.join(e.parentPath, e.name)))
      .sort();
  } catch {
    return [];
  }
}

export function packPath(storeDir: string, packId: string): string {
  return path.join(storeDir, 'packs', packId.slice(0, 2), packId);
}
