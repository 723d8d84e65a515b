import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArcaErrorCode, backup, check, isArcaError, listAll, listLocks, resolveSnapshot, restore, type Store } from '../src/index.ts';
import { describeTree, newStore, reopen, tempDir } from './support/engine-fixtures.ts';

const CHILD = fileURLToPath(new URL('./support/backup-child.ts', import.meta.url));
const PASS = 'correct horse battery staple';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).length;
}

function makeRandomTree(root: string, files: number, size: number): void {
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${i % 16}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `f${i}.bin`), randomBytes(size));
  }
}

describe('crash safety', () => {
  it('a backup killed with SIGKILL leaves a store that checks clean, and the next backup completes', async () => {
    const storeDir = path.join(tmp.dir, 'store');
    const src = path.join(tmp.dir, 'src');
    makeRandomTree(src, 400, 100_000); // 40 MB in 64 KiB packs: hundreds of packs, index flushes on the way
    await newStore(storeDir, { small: true });
    const child = spawn(process.execPath, [CHILD, storeDir, src], { env: { ...process.env, ARCA_TEST_PASSPHRASE: PASS }, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // kill it once it has written a good part of its packs
    for (let i = 0; i < 600 && countFiles(path.join(storeDir, 'packs')) < 150; i++) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(countFiles(path.join(storeDir, 'snapshots'))).toBe(0);
    const store = await reopen(storeDir);
    // a write cut short leaves at most a temp file, which no listing ever shows
    expect((await listAll(store.backend, 'packs/')).every((o) => /^packs\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(o.name))).toBe(true);

    const report = await check(store, { readData: true });
    expect(report.errors).toEqual([]);
    // the dead process's lock is recognized as stale and does not block the next backup
    expect((await listLocks(store)).every((l) => l.stale)).toBe(true);
    const resumed = await backup(store, { paths: [src] });
    // index files written before the kill let the resumed backup reuse what was uploaded
    expect(resumed.snapshot.summary!.bytesNew).toBeLessThan(40_000_000);
    const out = path.join(tmp.dir, 'out');
    await restore(store, await resolveSnapshot(store, resumed.id), { target: out, subPath: src });
    expect(describeTree(out)).toEqual(describeTree(src));
  });

  it('an aborted backup stops early, releases its lock and keeps what it read for the next run', async () => {
    const storeDir = path.join(tmp.dir, 'store');
    const src = path.join(tmp.dir, 'src');
    makeRandomTree(src, 300, 100_000);
    const store = await newStore(storeDir, { small: true });
    const controller = new AbortController();
    let seen = 0;
    const err = await backup(store, {
      paths: [src],
      signal: controller.signal,
      onProgress: (p) => {
        seen = p.files;
        if (p.files >= 50) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.Interrupted)).toBe(true);
    expect(seen).toBeLessThan(300);
    expect(await listLocks(store)).toEqual([]);
    expect(countFiles(path.join(storeDir, 'snapshots'))).toBe(0);

    const next = await reopen(storeDir);
    expect((await check(next, { readData: true })).errors).toEqual([]);
    const resumed = await backup(next, { paths: [src] });
    // at least the 50 files seen before the abort were stored and are not stored again
    expect(resumed.snapshot.summary!.bytesNew).toBeLessThanOrEqual(250 * 100_000);
    const out = path.join(tmp.dir, 'out');
    await restore(next, await resolveSnapshot(next, resumed.id), { target: out, subPath: src });
    expect(describeTree(out)).toEqual(describeTree(src));
  });

  const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;

  it.skipIf(!canMount)('a full disk fails the backup with a clear error and keeps earlier snapshots intact', async () => {
    const storeDir = path.join(tmp.dir, 'store');
    mkdirSync(storeDir);
    const opened: Store[] = [];
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', storeDir]);
    if (mounted.status !== 0) throw new Error(`cannot mount tmpfs: ${mounted.stderr.toString()}`);
    try {
      const small = path.join(tmp.dir, 'small');
      makeRandomTree(small, 4, 50_000);
      const store = await newStore(storeDir);
      opened.push(store);
      const first = await backup(store, { paths: [small] });
      const big = path.join(tmp.dir, 'big');
      makeRandomTree(big, 10, 1_000_000);
      const second = await reopen(storeDir);
      opened.push(second);
      const err = await backup(second, { paths: [big] }).catch((e: unknown) => e);
      expect(isArcaError(err, ArcaErrorCode.NoSpace)).toBe(true);
      expect((err as Error & { hint?: string }).hint).toMatch(/free space/);

      const after = await reopen(storeDir);
      opened.push(after);
      expect((await check(after, {})).errors).toEqual([]);
      const out = path.join(tmp.dir, 'out');
      await restore(after, await resolveSnapshot(after, first.id), { target: out, subPath: small });
      expect(describeTree(out)).toEqual(describeTree(small));
    } finally {
      // stores keep pack descriptors open for range reads: close them so the mount is not busy
      for (const s of opened) await s.backend.close();
      spawnSync('umount', [storeDir]);
    }
  });

  const isRoot = process.getuid?.() === 0;

  it('an unreadable file is reported and skipped, and the backup still completes', async () => {
    const storeDir = path.join(tmp.dir, 'store');
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'readable.txt'), 'ok');
    writeFileSync(path.join(src, 'secret.txt'), 'no');
    chmodSync(path.join(src, 'secret.txt'), 0o000);
    await newStore(storeDir);
    let uid: number | undefined;
    if (isRoot) {
      // root reads everything: run the backup as an unprivileged user instead
      uid = 65534;
      chmodSync(tmp.dir, 0o755);
      for (const p of [storeDir, ...readdirSync(storeDir, { recursive: true }).map((n) => path.join(storeDir, String(n)))]) chownSync(p, uid, uid);
      chownSync(src, uid, uid);
    }
    const res = spawnSync(process.execPath, [CHILD, storeDir, src], { env: { ...process.env, ARCA_TEST_PASSPHRASE: PASS }, ...(uid === undefined ? {} : { uid, gid: uid }), encoding: 'utf8' });
    expect(res.stderr).toBe('');
    const out = JSON.parse(res.stdout) as { id: string; warnings: { path: string; message: string }[] };
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]!.path).toBe(path.join(src, 'secret.txt'));
    expect(out.warnings[0]!.message).toMatch(/EACCES/);
    const store = await reopen(storeDir);
    const snap = await resolveSnapshot(store, out.id);
    expect(snap.snapshot.summary!.skipped).toBe(1);
  });
});
