import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestStore, tempDir } from './helpers.ts';

describe('arca sync', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let a: TestStore;
  let b: TestStore;
  let src: string;
  let passFile: string;

  beforeAll(async () => {
    tmp = await tempDir('arca-cli-sync-');
    a = new TestStore(path.join(tmp.dir, 'a'), 'passphrase of a');
    b = new TestStore(path.join(tmp.dir, 'b'), 'passphrase of b');
    await a.init();
    await b.init();
    src = path.join(tmp.dir, 'src');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, 'hello.txt'), 'hello\n');
    await writeFile(path.join(src, 'sub/random.bin'), randomBytes(2_500_000));
    passFile = path.join(tmp.dir, 'b.pass');
    await writeFile(passFile, 'passphrase of b\n', { mode: 0o600 });
  });
  afterAll(() => tmp.cleanup());

  it('copies snapshots with --to-passphrase-file, skips them on the next run, and the copy restores byte-identical', async () => {
    const { id } = await a.backup([src]);
    const r = await a.run(['sync', '--to', b.location, '--to-passphrase-file', passFile, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { copied: { source: string; id: string }[]; skipped: unknown[] };
    expect(out.copied.map((c) => c.source)).toEqual([id]);
    // the passphrase never shows up in output
    expect(r.stdout + r.stderr).not.toContain('passphrase of b');

    const again = await a.run(['sync', '--to', b.location], { env: { ARCA_TO_PASSPHRASE: 'passphrase of b' } });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/copied 0 snapshots .* 1 snapshot already in the destination/);

    const target = path.join(tmp.dir, 'restored');
    const restored = await b.run(['restore', `${out.copied[0]!.id}:${src}`, '--target', target]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await readFile(path.join(target, 'sub/random.bin'))).toEqual(await readFile(path.join(src, 'sub/random.bin')));
    const checked = await b.run(['check', '--read-data']);
    expect(checked.code, checked.stderr).toBe(0);
  });

  it('without the destination passphrase: a usable error, exit 1; without --to: usage error, exit 2', async () => {
    const r = await a.run(['sync', '--to', b.location]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no passphrase given for the destination store/);
    expect(r.stderr).toMatch(/--to-passphrase-file/);
    const u = await a.run(['sync']);
    expect(u.code).toBe(2);
    const help = await a.run(['sync', '--help']);
    expect(help.stdout).toMatch(/Examples:/);
  });
});
