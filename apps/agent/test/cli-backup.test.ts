import { chmod, chown, mkdir, readdir, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAST_KDF, jsonLines, TestStore, tempDir } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

describe('arca backup options and key management', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    tmp = await tempDir();
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('exclude patterns and exclude files leave paths out', async () => {
    const root = path.join(tmp.dir, 'excl');
    const store = new TestStore(root);
    const src = path.join(root, 'src');
    for (const d of ['cache', 'node_modules', 'sub']) await mkdir(path.join(src, d), { recursive: true });
    const files = ['keep.txt', 'debug.log', 'important.log', 'cache/x.bin', 'node_modules/m.js', 'sub/notes.log', 'sub/keep.md'];
    for (const f of files) await writeFile(path.join(src, f), `${f}\n`);
    const excludeFile = path.join(root, 'excludes.txt');
    await writeFile(excludeFile, '# dependencies\nnode_modules/\n\n');
    await store.init();

    const { id, json } = await store.backup([src, '--exclude', '*.log', '--exclude', '!important.log', '--exclude', 'cache/', '--exclude-file', excludeFile]);
    expect(json.warnings).toEqual([]);
    const entries = jsonLines<{ path: string }>((await store.run(['ls', `${id}:${src}`, '--recursive', '--json'])).stdout);
    expect(entries.map((e) => path.relative(src, e.path)).sort()).toEqual(['important.log', 'keep.txt', 'sub', 'sub/keep.md']);
    const snaps = JSON.parse((await store.run(['snapshots', '--json'])).stdout) as { excludes: string[] }[];
    expect(snaps[0]!.excludes).toEqual(['*.log', '!important.log', 'cache/', 'node_modules/']);
  });

  it('an unreadable file is skipped with a warning and exit status 3', async () => {
    const root = path.join(tmp.dir, 'unreadable');
    await mkdir(root);
    // root reads every file regardless of its mode: run arca as `nobody` then
    const as = isRoot ? { uid: NOBODY, gid: NOBODY } : {};
    if (isRoot) await chown(root, NOBODY, NOBODY);
    const store = new TestStore(root);
    const src = path.join(root, 'src');
    await mkdir(src);
    await writeFile(path.join(src, 'ok.txt'), 'fine\n');
    await writeFile(path.join(src, 'locked.txt'), 'you cannot read me\n');
    await chmod(path.join(src, 'locked.txt'), 0o000);
    await store.init(as);

    const r = await store.run(['backup', src], as);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^arca: warning: skipped .*locked\.txt: EACCES/m);
    expect(r.stdout).toMatch(/snapshot [0-9a-f]{64} saved/);
    expect(r.stdout).toMatch(/skipped: +1 path/);

    const j = await store.run(['backup', '--json', src], as);
    expect(j.code).toBe(3);
    const json = JSON.parse(j.stdout) as { warnings: { path: string }[] };
    expect(json.warnings.map((w) => path.basename(w.path))).toEqual(['locked.txt']);
    const listed = jsonLines<{ path: string }>((await store.run(['ls', `latest:${src}`, '--json'], as)).stdout);
    expect(listed.map((e) => path.basename(e.path))).toEqual(['ok.txt']);
  });

  it('key add / list / remove, never removing the last key or the one in use', async () => {
    const root = path.join(tmp.dir, 'keys');
    const store = new TestStore(root, 'first passphrase');
    await store.init();
    const second = 'second passphrase';

    const noNew = await store.run(['key', 'add']);
    expect(noNew.code).toBe(1);
    expect(noNew.stderr).toContain('ARCA_NEW_PASSPHRASE');

    const add = await store.run(['key', 'add', '--label', 'spare', ...FAST_KDF, '--json'], { env: { ARCA_NEW_PASSPHRASE: second } });
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const added = (JSON.parse(add.stdout) as { id: string }).id;

    const list = JSON.parse((await store.run(['key', 'list', '--json'])).stdout) as { id: string; label: string; current: boolean }[];
    expect(list).toHaveLength(2);
    const firstSlot = list.find((s) => s.id !== added)!;
    expect(firstSlot.current).toBe(true);
    expect(list.find((s) => s.id === added)).toMatchObject({ label: 'spare', current: false });

    const table = await store.run(['key', 'list'], { env: { ARCA_PASSPHRASE: second } });
    expect(table.stdout).toMatch(new RegExp(`^\\*\\s+${added.slice(0, 8)}`, 'm'));

    const inUse = await store.run(['key', 'remove', firstSlot.id.slice(0, 8)]);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/used to open the store/);

    const removed = await store.run(['key', 'remove', firstSlot.id.slice(0, 8)], { env: { ARCA_PASSPHRASE: second } });
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain(`removed key slot ${firstSlot.id.slice(0, 8)}`);

    const oldPass = await store.run(['snapshots']);
    expect(oldPass.code).toBe(1);
    expect(oldPass.stderr).toMatch(/passphrase/);

    const last = await store.run(['key', 'remove', added.slice(0, 8)], { env: { ARCA_PASSPHRASE: second } });
    expect(last.code).toBe(1);
    expect(last.stderr).toMatch(/last key slot/);
  });

  it('new passphrase from --new-passphrase-file', async () => {
    const root = path.join(tmp.dir, 'keyfile');
    const store = new TestStore(root);
    await store.init();
    const file = path.join(root, 'new-pass');
    await writeFile(file, 'from a file\n');
    const r = await store.run(['key', 'add', '--new-passphrase-file', file, ...FAST_KDF]);
    expect(r.code).toBe(0);
    const open = await store.run(['snapshots'], { env: { ARCA_PASSPHRASE: 'from a file' } });
    expect(open.code).toBe(0);
  });

  it('SIGINT during backup: exit 130 with a resume hint; the store stays usable', async () => {
    const root = path.join(tmp.dir, 'sigint');
    const store = new TestStore(root);
    const src = path.join(root, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(path.join(src, 'small.txt'), 'small\n');
    await writeFile(path.join(src, 'huge.img'), '');
    await truncate(path.join(src, 'huge.img'), 64 * 1024 ** 3); // sparse: reading it takes a while
    await store.init();

    const r = await store.run(['backup', src], {
      onSpawn: (child) => {
        // interrupt once the backup holds its lock, i.e. is running
        const poll = setInterval(() => {
          void readdir(path.join(store.location, 'locks')).then(
            (locks) => {
              if (locks.length > 0) {
                clearInterval(poll);
                setTimeout(() => child.kill('SIGINT'), 300);
              }
            },
            () => undefined,
          );
        }, 50);
        child.on('exit', () => clearInterval(poll));
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted; the store is consistent, run backup again to resume/);

    expect(r.stderr).toMatch(/saving what was read so far/);

    const snaps = await store.run(['snapshots', '--json']);
    expect(snaps.code).toBe(0);
    expect(JSON.parse(snaps.stdout)).toEqual([]);
    // a graceful interruption releases its lock, and indexes what it had read (nothing is lost)
    expect(await readdir(path.join(store.location, 'locks'))).toEqual([]);
    expect((await readdir(path.join(store.location, 'index'))).length).toBeGreaterThan(0);
    const check = await store.run(['check']);
    expect(check.code).toBe(0);
  });
});
