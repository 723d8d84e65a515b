import { randomBytes } from 'node:crypto';
import { appendFile, chmod, lstat, mkdir, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, TestStore, tempDir } from './helpers.ts';

interface Entry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtimeMs: number;
  content?: Buffer;
  target?: string;
}

/** Everything below `dir`, keyed by relative path. */
async function snapshotTree(dir: string, rel = ''): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  for (const name of (await readdir(path.join(dir, rel))).sort()) {
    const r = path.join(rel, name);
    const full = path.join(dir, r);
    const st = await lstat(full);
    if (st.isSymbolicLink()) out.set(r, { type: 'symlink', mode: 0, mtimeMs: 0, target: await readlink(full) });
    else if (st.isDirectory()) {
      out.set(r, { type: 'dir', mode: st.mode & 0o7777, mtimeMs: st.mtimeMs });
      for (const [k, v] of await snapshotTree(dir, r)) out.set(k, v);
    } else out.set(r, { type: 'file', mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, content: await readFile(full) });
  }
  return out;
}

describe('arca: init → backup → snapshots → ls → cat → restore → diff → find → check → forget --prune', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let store: TestStore;
  let src: string;
  let first: string;
  let second: string;
  const big = randomBytes(3 * 1024 * 1024 + 12345); // several chunks

  beforeAll(async () => {
    tmp = await tempDir();
    store = new TestStore(tmp.dir);
    src = path.join(tmp.dir, 'src');
    await mkdir(path.join(src, 'sub', 'deep'), { recursive: true });
    await writeFile(path.join(src, 'hello.txt'), 'hello world\n');
    await writeFile(path.join(src, 'script.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await chmod(path.join(src, 'script.sh'), 0o755);
    await writeFile(path.join(src, 'secret.txt'), 'top secret\n');
    await chmod(path.join(src, 'secret.txt'), 0o600);
    await writeFile(path.join(src, 'sub', 'big.bin'), big);
    await writeFile(path.join(src, 'sub', 'deep', 'empty.txt'), '');
    await symlink('hello.txt', path.join(src, 'link'));
    // distinctive mtimes, children before parents (creating a child touches the parent)
    const t = (s: number) => new Date(1_600_000_000_000 + s * 1000 + 123);
    await utimes(path.join(src, 'hello.txt'), t(1), t(1));
    await utimes(path.join(src, 'script.sh'), t(2), t(2));
    await utimes(path.join(src, 'secret.txt'), t(3), t(3));
    await utimes(path.join(src, 'sub', 'big.bin'), t(4), t(4));
    await utimes(path.join(src, 'sub', 'deep', 'empty.txt'), t(5), t(5));
    await utimes(path.join(src, 'sub', 'deep'), t(6), t(6));
    await utimes(path.join(src, 'sub'), t(7), t(7));
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('init prints the store ID and the passphrase reminder', async () => {
    const r = await store.init();
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/created store [0-9a-f]{64}/);
    expect(r.stdout).toMatch(/passphrase/i);
    expect(r.stdout + r.stderr).not.toContain(store.passphrase);
  });

  it('backup prints the snapshot ID and a summary', async () => {
    const r = await store.run(['backup', src, '--tag', 'first']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /snapshot ([0-9a-f]{64}) saved/.exec(r.stdout);
    expect(m).not.toBeNull();
    first = m![1]!;
    expect(r.stdout).toMatch(/5 new, 0 changed, 0 unmodified/);
    expect(r.stdout).toMatch(/added:/);
  });

  it('snapshots --json lists it', async () => {
    const r = await store.run(['snapshots', '--json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { id: string; tags: string[]; paths: string[]; summary: { bytesTotal: number } }[];
    expect(list).toHaveLength(1);
    expect(list[0]!.id).toBe(first);
    expect(list[0]!.tags).toEqual(['first']);
    expect(list[0]!.paths).toEqual([src]);
    expect(list[0]!.summary.bytesTotal).toBe(big.length + 12 + 18 + 11);
    const table = await store.run(['snapshots']);
    expect(table.stdout).toContain(first.slice(0, 8));
    expect(table.stdout).toContain('first');
  });

  it('ls lists a directory, recursively, long and as JSON Lines', async () => {
    const flat = await store.run(['ls', `latest:${src}`]);
    expect(flat.code).toBe(0);
    expect(flat.stdout.trim().split('\n')).toEqual([`${src}/hello.txt`, `${src}/link`, `${src}/script.sh`, `${src}/secret.txt`, `${src}/sub/`]);

    const long = await store.run(['ls', `${first.slice(0, 10)}:${src}`, '--long']);
    expect(long.stdout).toMatch(/^-rwxr-xr-x .*script\.sh$/m);
    expect(long.stdout).toMatch(/^-rw------- .*secret\.txt$/m);
    expect(long.stdout).toMatch(/^lrwxrwxrwx .*link -> hello\.txt$/m);

    const rec = jsonLines<{ path: string; type: string; size?: number }>((await store.run(['ls', `latest:${src}/sub`, '-R', '--json'])).stdout);
    expect(rec.map((e) => e.path)).toEqual([`${src}/sub/big.bin`, `${src}/sub/deep`, `${src}/sub/deep/empty.txt`]);
    expect(rec[0]).toMatchObject({ type: 'file', size: big.length });
  });

  it('cat writes the exact bytes of a file', async () => {
    const r = await store.run(['cat', `${first.slice(0, 8)}:${src}/sub/big.bin`]);
    expect(r.code).toBe(0);
    expect(r.stdoutBytes.equals(big)).toBe(true);
    const small = await store.run(['cat', `latest:${src}/hello.txt`]);
    expect(small.stdout).toBe('hello world\n');
    const dir = await store.run(['cat', `latest:${src}/sub`]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/directory/);
  });

  it('restore reproduces content, modes, mtimes and symlinks', async () => {
    const target = path.join(tmp.dir, 'restored');
    const r = await store.run(['restore', `latest:${src}`, '--target', target]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const want = await snapshotTree(src);
    const got = await snapshotTree(target);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [rel, w] of want) {
      const g = got.get(rel)!;
      expect(g.type, rel).toBe(w.type);
      expect(g.mode.toString(8), rel).toBe(w.mode.toString(8));
      expect(g.target, rel).toBe(w.target);
      if (w.content) expect(g.content!.equals(w.content), rel).toBe(true);
      if (w.type !== 'symlink') expect(Math.abs(g.mtimeMs - w.mtimeMs), rel).toBeLessThan(1);
    }

    const one = path.join(tmp.dir, 'one-file');
    const f = await store.run(['restore', `latest:${src}/sub/big.bin`, '--target', one, '--json']);
    expect(f.code).toBe(0);
    expect(JSON.parse(f.stdout)).toMatchObject({ files: 1, bytes: big.length });
    expect((await readFile(path.join(one, 'big.bin'))).equals(big)).toBe(true);
  });

  it('diff shows added, removed, modified and metadata changes', async () => {
    await appendFile(path.join(src, 'hello.txt'), 'more\n');
    await writeFile(path.join(src, 'new.txt'), 'new file\n');
    await rm(path.join(src, 'secret.txt'));
    await chmod(path.join(src, 'script.sh'), 0o700);
    const b = await store.backup([src, '--tag', 'second']);
    second = b.id;
    expect(b.json.summary).toMatchObject({ filesNew: 1, filesChanged: 2 });

    const r = await store.run(['diff', first.slice(0, 8), 'latest']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(`M    ${src}/hello.txt`);
    expect(lines).toContain(`+    ${src}/new.txt`);
    expect(lines).toContain(`-    ${src}/secret.txt`);
    expect(lines).toContain(`U    ${src}/script.sh`);
    expect(r.stdout).toMatch(/added: +1 file/);

    const j = jsonLines<{ change?: string; path?: string; stats?: { added: number; removed: number; modified: number } }>(
      (await store.run(['diff', first, second, '--json'])).stdout,
    );
    expect(j.at(-1)!.stats).toMatchObject({ added: 1, removed: 1, modified: 1 });
    expect(j.find((e) => e.path === `${src}/new.txt`)?.change).toBe('added');
  });

  it('find searches all snapshots, or the ones given', async () => {
    const r = await store.run(['find', '*.txt']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`snapshot ${first.slice(0, 8)}`);
    expect(r.stdout).toContain(`snapshot ${second.slice(0, 8)}`);
    expect(r.stdout).toContain(`${src}/secret.txt`);

    const only = jsonLines<{ snapshot: string; path: string }>((await store.run(['find', 'new.txt', 'secret.txt', '--json'])).stdout);
    expect(only.map((m) => [m.snapshot, m.path])).toEqual([
      [first, `${src}/secret.txt`],
      [second, `${src}/new.txt`],
    ]);

    const given = jsonLines<{ snapshot: string }>((await store.run(['find', '*.txt', '--snapshot', first.slice(0, 8), '--json'])).stdout);
    expect(given.length).toBeGreaterThan(0);
    expect(new Set(given.map((m) => m.snapshot))).toEqual(new Set([first]));
  });

  it('check passes, with and without reading data', async () => {
    const r = await store.run(['check']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no errors found/);
    const d = await store.run(['check', '--read-data', '--json']);
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ ok: true, errors: [] });
    const sub = await store.run(['check', '--read-data-subset', '1/2']);
    expect(sub.code).toBe(0);
  });

  it('forget by ID resolves every reference before removing anything', async () => {
    const dry = await store.run(['forget', first.slice(0, 8), '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect((JSON.parse(dry.stdout) as { remove: { id: string }[] }).remove.map((r) => r.id)).toEqual([first]);

    const typo = await store.run(['forget', first.slice(0, 8), 'ffffffffffff']);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/ffffffffffff/);
    const both = await store.run(['forget', first.slice(0, 8), '--keep-last', '1']);
    expect(both.code).toBe(2);
    const list = JSON.parse((await store.run(['snapshots', '--json'])).stdout) as { id: string }[];
    expect(list.map((s) => s.id).sort()).toEqual([first, second].sort());
  });

  it('forget --keep-last 1 --prune removes the old snapshot and keeps the new one readable', async () => {
    const dry = await store.run(['forget', '--keep-last', '1', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/would remove 1 snapshot/);

    const r = await store.run(['forget', '--keep-last', '1', '--prune']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/removed 1 snapshot/);
    expect(r.stdout).toContain(first.slice(0, 8));
    expect(r.stdout).toMatch(/unused space left/);

    const list = JSON.parse((await store.run(['snapshots', '--json'])).stdout) as { id: string }[];
    expect(list.map((s) => s.id)).toEqual([second]);
    const gone = await store.run(['ls', first.slice(0, 8)]);
    expect(gone.code).toBe(1);

    const cat = await store.run(['cat', `latest:${src}/sub/big.bin`]);
    expect(cat.stdoutBytes.equals(big)).toBe(true);
    const check = await store.run(['check', '--read-data']);
    expect(check.code).toBe(0);
  });

  it('forget ID removes exactly the named snapshot', async () => {
    const third = (await store.run(['backup', src, '--quiet'])).stdout.trim();
    const r = await store.run(['forget', second.slice(0, 10)]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/removed 1 snapshot/);
    const list = JSON.parse((await store.run(['snapshots', '--json'])).stdout) as { id: string }[];
    expect(list.map((s) => s.id)).toEqual([third]);
  });
});
