import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_KDF, runArca, TestStore, tempDir } from './helpers.ts';

describe('arca error handling', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let store: TestStore;
  let src: string;

  beforeAll(async () => {
    tmp = await tempDir();
    store = new TestStore(tmp.dir);
    src = path.join(tmp.dir, 'src');
    await mkdir(src);
    await writeFile(path.join(src, 'a.txt'), 'a\n');
    await store.init();
    await store.backup([src]);
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('wrong passphrase: exit 1, says so, never prints the passphrase', async () => {
    const wrong = 'Wr0ng-Secret-Phrase-XYZ';
    const r = await store.run(['snapshots'], { env: { ARCA_PASSPHRASE: wrong } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^arca: error: .*passphrase/m);
    expect(r.stderr).toMatch(/^hint: /m);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toContain(wrong);

    const j = await store.run(['snapshots', '--json'], { env: { ARCA_PASSPHRASE: wrong } });
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'WRONG_PASSPHRASE' } });
    expect(j.stdout + j.stderr).not.toContain(wrong);
  });

  it('reads the passphrase from --passphrase-file and ARCA_PASSPHRASE_FILE (first line only)', async () => {
    const file = path.join(tmp.dir, 'pass.txt');
    await writeFile(file, `${store.passphrase}\nsecond line is ignored\n`);
    const viaFlag = await store.run(['snapshots', '--passphrase-file', file], { env: { ARCA_PASSPHRASE: undefined } });
    expect(viaFlag.stderr).toBe('');
    expect(viaFlag.code).toBe(0);
    const viaEnv = await runArca(['snapshots', '-q'], { env: { ARCA_STORE: store.location, ARCA_PASSPHRASE_FILE: file } });
    expect(viaEnv.code).toBe(0);
  });

  it('a passphrase file wins over ARCA_PASSPHRASE', async () => {
    const file = path.join(tmp.dir, 'pass-wins.txt');
    await writeFile(file, `${store.passphrase}\n`);
    const r = await runArca(['snapshots', '-q'], { env: { ARCA_STORE: store.location, ARCA_PASSPHRASE_FILE: file, ARCA_PASSPHRASE: 'not-the-passphrase' } });
    expect(r.code).toBe(0);
  });

  it('a short wrong passphrase is not masked in messages (masking would reveal it)', async () => {
    const r = await store.run(['snapshots'], { env: { ARCA_PASSPHRASE: 'arca' } });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('***');
    expect(r.stderr).toMatch(/arca init|arca key list/);
  });

  it('forget --max-unused without --prune is a usage error', async () => {
    const r = await store.run(['forget', '--keep-last', '1', '--max-unused', '10']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--max-unused only applies with --prune/);
  });

  it('no passphrase and no terminal: exit 1 naming the three ways to give one', async () => {
    const r = await runArca(['snapshots'], { env: { ARCA_STORE: store.location } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ARCA_PASSPHRASE');
    expect(r.stderr).toContain('--passphrase-file');
    expect(r.stderr).toMatch(/terminal/);
  });

  it('missing store: exit 1 with a hint to run `arca init`', async () => {
    const r = await runArca(['snapshots'], { env: { ARCA_STORE: path.join(tmp.dir, 'nope'), ARCA_PASSPHRASE: 'x' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no Arca store/);
    expect(r.stderr).toContain('arca init');

    const none = await runArca(['snapshots'], { env: { ARCA_PASSPHRASE: 'x' } });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no store given/);
    expect(none.stderr).toContain('ARCA_STORE');
  });

  it('init refuses an existing store', async () => {
    const r = await store.run(['init', ...FAST_KDF]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists/);
  });

  it('init rejects Argon2 parameters below the crypto library minimum', async () => {
    const r = await runArca(['init', '--kdf-memory', '1024'], { env: { ARCA_STORE: path.join(tmp.dir, 'weak'), ARCA_PASSPHRASE: 'x' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--kdf-memory.*must be at least 8192/);
  });

  it('init takes a compression level and pack size, and refuses a level out of range', async () => {
    const env = { ARCA_PASSPHRASE: 'x' };
    const bad = await runArca(['init', ...FAST_KDF, '--compression-level', '25'], { env: { ...env, ARCA_STORE: path.join(tmp.dir, 'lvl-bad') } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--compression-level.*must be at most 19/);
    const dir = path.join(tmp.dir, 'lvl1');
    const ok = await runArca(['init', ...FAST_KDF, '--compression-level', '1', '--pack-size', '4', '--json'], { env: { ...env, ARCA_STORE: dir } });
    expect(ok.code).toBe(0);
    const config = JSON.parse(await readFile(path.join(dir, 'config'), 'utf8')) as { compression: { level: number }; packSize: number };
    expect(config.compression.level).toBe(1);
    expect(config.packSize).toBe(4 * 1024 * 1024);
  });

  it('unknown or malformed snapshot references: exit 1', async () => {
    for (const args of [['ls', 'deadbeef'], ['restore', 'deadbeef', '--target', path.join(tmp.dir, 'r')], ['cat', 'deadbeef:/a.txt']]) {
      const r = await store.run(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/no snapshot deadbeef/);
      expect(r.stderr).toMatch(/^hint: .*arca snapshots/m);
    }
    const bad = await store.run(['ls', 'not-an-id']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not a snapshot ID/);
    const missingPath = await store.run(['ls', `latest:${src}/missing`]);
    expect(missingPath.code).toBe(1);
    expect(missingPath.stderr).toMatch(/is not in snapshot/);
  });

  it('usage errors exit 2', async () => {
    const cases = [
      ['snapshots', '--bogus'],
      ['backup'],
      ['restore', 'latest'],
      ['frobnicate'],
      ['forget'],
      ['forget', '--keep-last', 'x'],
      ['check', '--read-data', '--read-data-subset', '1/2'],
      ['check', '--read-data-subset', '3/2'],
      ['cat', 'latest'],
    ];
    for (const args of cases) {
      const r = await store.run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/arca: error/);
    }
    const j = await store.run(['snapshots', '--bogus', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'USAGE' } });
  });

  it('a damaged pack: check --read-data names the affected file and exits 1; restore exits 3', async () => {
    const root = path.join(tmp.dir, 'damaged');
    const damaged = new TestStore(root);
    const dsrc = path.join(root, 'src');
    await mkdir(dsrc, { recursive: true });
    await writeFile(path.join(dsrc, 'data.bin'), randomBytes(100_000));
    await damaged.init();
    await damaged.backup([dsrc]);
    // flip a byte in the middle of the biggest pack (the one holding data.bin)
    const packs: string[] = [];
    for (const d of await readdir(path.join(damaged.location, 'packs'))) {
      for (const f of await readdir(path.join(damaged.location, 'packs', d))) packs.push(path.join(damaged.location, 'packs', d, f));
    }
    const sizes = await Promise.all(packs.map(async (p) => (await stat(p)).size));
    const biggest = packs[sizes.indexOf(Math.max(...sizes))]!;
    const bytes = await readFile(biggest);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(biggest, bytes);

    expect((await damaged.run(['check'])).code).toBe(0); // structure only: the data is not read
    const r = await damaged.run(['check', '--read-data']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/damaged data blob/);
    expect(r.stdout).toContain(`${dsrc}/data.bin`);
    expect(r.stderr).toMatch(/^arca: error: check found/m);
    const j = await damaged.run(['check', '--read-data', '--json']);
    expect(j.code).toBe(1);
    const doc = JSON.parse(j.stdout) as { ok: boolean; damagedBlobs: { files: { path: string }[] }[] };
    expect(doc.ok).toBe(false);
    expect(doc.damagedBlobs[0]!.files.map((f) => f.path)).toEqual([`${dsrc}/data.bin`]);

    const restore = await damaged.run(['restore', 'latest', '--target', path.join(root, 'out')]);
    expect(restore.code).toBe(3);
    expect(restore.stderr).toMatch(/arca: warning: .*data\.bin/);
    const cat = await damaged.run(['cat', `latest:${dsrc}/data.bin`]);
    expect(cat.code).toBe(1);
    expect(cat.stderr).toMatch(/damaged/);

    // the way out: repair the index, back up again, and the old snapshot is whole again
    expect(r.stderr).toMatch(/arca repair index/);
    const repair = await damaged.run(['repair', 'index']);
    expect(repair.code).toBe(0);
    expect(repair.stdout).toMatch(/left out data blob .* authentication failed/);
    expect(repair.stdout).toContain(`${dsrc}/data.bin`);
    expect((await damaged.run(['backup', dsrc])).code).toBe(0);
    expect((await damaged.run(['check', '--read-data'])).code).toBe(0);
    const snaps = JSON.parse((await damaged.run(['snapshots', '--json'])).stdout) as { id: string }[];
    const out = path.join(root, 'healed');
    const healed = await damaged.run(['restore', `${snaps[0]!.id}:${dsrc}`, '--target', out]);
    expect(healed.code).toBe(0);
    expect(await readFile(path.join(out, 'data.bin'))).toEqual(await readFile(path.join(dsrc, 'data.bin')));
  });

  it('--help shows examples; version shows versions', async () => {
    const root = await runArca(['--help']);
    expect(root.code).toBe(0);
    expect(root.stdout).toContain('Examples:');
    expect(root.stdout).toContain('ARCA_PASSPHRASE');
    const backup = await runArca(['backup', '--help']);
    expect(backup.code).toBe(0);
    expect(backup.stdout).toContain('Examples:');
    expect(backup.stdout).toContain('--exclude');
    expect(backup.stdout).toContain('--store'); // global options are listed too

    const v = await runArca(['version', '--json']);
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ node: process.version, platform: process.platform });
  });
});
