import { createCipheriv } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, TestStore, tempDir } from './helpers.ts';

// Stream sources through the real `arca` executable: `backup --stdin` and
// `backup --stdin-from-command -- CMD ARGS...`, read back with `cat` and `restore`.

/** Deterministic pseudo-random bytes (AES-256-CTR of zeros under a fixed key): incompressible, reproducible. */
function pseudoRandom(length: number, seed: number): Buffer {
  const key = Buffer.alloc(32, seed);
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

interface StreamBackupJson {
  id: string;
  paths: string[];
  parent: string | null;
  summary: { filesNew: number; filesChanged: number; dirs: number; dataBlobsNew: number; treeBlobsNew: number; bytesTotal: number; bytesNew: number; bytesStored: number };
}

async function packBytes(store: TestStore): Promise<number> {
  let total = 0;
  const packs = path.join(store.location, 'packs');
  for (const dir of await readdir(packs)) for (const f of await readdir(path.join(packs, dir))) total += (await stat(path.join(packs, dir, f))).size;
  return total;
}

async function snapshotIds(store: TestStore): Promise<string[]> {
  const r = await store.run(['snapshots', '--json']);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id);
}

describe('arca backup --stdin and --stdin-from-command', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let store: TestStore;
  const data = pseudoRandom(6 * 1024 * 1024 + 12345, 7);

  beforeAll(async () => {
    tmp = await tempDir('arca-stream-');
    store = new TestStore(tmp.dir);
    await store.init();
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('backs up stdin as one file that cat and restore give back byte for byte', async () => {
    const r = await store.run(['backup', '--json', '--stdin', '--stdin-filename', 'dumps/data.bin', '--tag', 'stream'], { input: data });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as StreamBackupJson;
    expect(json.paths).toEqual(['/dumps/data.bin']);
    expect(json.parent).toBeNull();
    expect(json.summary).toMatchObject({ filesNew: 1, dirs: 1, bytesTotal: data.length, bytesNew: data.length });
    expect(json.summary.dataBlobsNew).toBeGreaterThan(1); // several chunks: it went through the chunker

    const cat = await store.run(['cat', `${json.id}:/dumps/data.bin`]);
    expect(cat.code).toBe(0);
    expect(cat.stdoutBytes.equals(data)).toBe(true);

    const target = path.join(tmp.dir, 'restored');
    const restored = await store.run(['restore', `${json.id}:/dumps/data.bin`, '--target', target]);
    expect(restored.code).toBe(0);
    expect((await readFile(path.join(target, 'data.bin'))).equals(data)).toBe(true);
    expect((await stat(path.join(target, 'data.bin'))).mode & 0o777).toBe(0o600);

    const [entry] = jsonLines<{ path: string; type: string; mode: number; size: number; uid: number; gid: number; mtime: string }>(
      (await store.run(['ls', '--json', `${json.id}:/dumps/data.bin`])).stdout,
    );
    expect(entry).toMatchObject({ path: '/dumps/data.bin', type: 'file', mode: 0o600, size: data.length, uid: process.getuid!(), gid: process.getgid!() });
    expect(Math.abs(Date.parse(entry!.mtime) - Date.now())).toBeLessThan(60_000);
  });

  it('a second identical stream adds no data: only its two small trees are new', async () => {
    const before = await packBytes(store);
    const r = await store.run(['backup', '--json', '--stdin', '--stdin-filename', 'dumps/data.bin'], { input: data });
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as StreamBackupJson;
    expect(json.parent).not.toBeNull(); // the previous backup of the same stream name
    expect(json.summary).toMatchObject({ filesChanged: 1, dataBlobsNew: 0, bytesNew: 0, bytesTotal: data.length });
    expect(json.summary.treeBlobsNew).toBeLessThanOrEqual(2);
    // the trees: a few hundred bytes each, against 6 MiB of data
    expect((await packBytes(store)) - before).toBeLessThan(8 * 1024);
  });

  it('backs up a command\'s stdout (no shell involved) and names it by --stdin-filename', async () => {
    const r = await store.run(['backup', '--json', '--stdin-from-command', '--stdin-filename', 'out.txt', '--', 'sh', '-c', 'printf "%s|" "$@"; echo "warned" >&2', 'sh', 'a b', '$HOME', '*']);
    expect(r.code).toBe(0);
    // a command's stderr is passed on as warnings; the backup still succeeds
    expect(r.stderr).toBe('arca: warning: sh (stderr): warned\n');
    const json = JSON.parse(r.stdout) as StreamBackupJson;
    expect(json.paths).toEqual(['/out.txt']);
    // the arguments reach the command as they are: no word splitting, no expansion
    expect((await store.run(['cat', `${json.id}:/out.txt`])).stdout).toBe('a b|$HOME|*|');
  });

  it('a command that exits non-zero fails the backup with exit 1, says why and saves no snapshot', async () => {
    const before = await snapshotIds(store);
    const r = await store.run(['backup', '--stdin-from-command', '--stdin-filename', 'x.dump', '--', 'sh', '-c', 'echo partial; echo "pg_dump: error: connection refused" >&2; exit 3']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^arca: error: command "sh" exited with status 3; no snapshot was saved/m);
    expect(r.stderr).toContain('pg_dump: error: connection refused');
    expect(await snapshotIds(store)).toEqual(before);

    const json = await store.run(['backup', '--json', '--stdin-from-command', '--', 'sh', '-c', 'exit 9']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'SOURCE_FAILED', message: expect.stringContaining('exited with status 9') } });

    const killed = await store.run(['backup', '--stdin-from-command', '--', 'sh', '-c', 'echo some; kill -KILL $$']);
    expect(killed.code).toBe(1);
    expect(killed.stderr).toMatch(/command "sh" was killed by SIGKILL; no snapshot was saved/);

    const missing = await store.run(['backup', '--stdin-from-command', '--', 'arca-no-such-command-4711']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot run command "arca-no-such-command-4711": not found/);

    expect(await snapshotIds(store)).toEqual(before);
    // the store stays consistent: what the failed runs stored is indexed, nothing is damaged
    const check = await store.run(['check', '--read-data']);
    expect(check.code).toBe(0);
  });

  it('refuses stream options that do not fit (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['backup', '--stdin', '/etc'], /--stdin takes no paths/],
      [['backup', '--stdin-from-command'], /needs the command to run/],
      [['backup', '--stdin', '--stdin-from-command', '--', 'true'], /cannot be combined/],
      [['backup', '--stdin', '--stdin-filename', '../etc/passwd'], /cannot name a backed-up stream/],
      [['backup', '--stdin', '--exclude', '*.log'], /--exclude applies to backups of paths/],
      [['backup', '--stdin-filename', 'x', '/etc'], /--stdin-filename needs --stdin/],
      [['backup'], /nothing to back up/],
    ];
    for (const [args, message] of cases) {
      const r = await store.run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
