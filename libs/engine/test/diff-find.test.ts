import { chmod, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { diffSnapshots, diffStats, type SnapshotChange } from '../src/diff/snapshot-diff.ts';
import { ArcaErrorCode } from '../src/errors/arca-error.ts';
import { compileGlob, globMatch } from '../src/find/glob.ts';
import { findInSnapshots } from '../src/find/snapshot-find.ts';
import { BlobType } from '../src/format/blob-codec.ts';
import type { SnapshotRecord } from '../src/snapshot/snapshot.ts';
import { findNode, loadTree } from '../src/snapshot/tree-io.ts';
import type { Store } from '../src/store/store.ts';
import { initStore, random, snap, TempDirs, writeFiles } from './maintenance-fixture.ts';

describe('globMatch', () => {
  const yes = (p: string, s: string) => expect(globMatch(p, s), `${p} should match ${s}`).toBe(true);
  const no = (p: string, s: string) => expect(globMatch(p, s), `${p} should not match ${s}`).toBe(false);

  it('* and ? stay within one path segment', () => {
    yes('*.txt', 'a.txt');
    yes('*.txt', '.txt');
    no('*.txt', 'a.txt.bak');
    no('*.txt', 'dir/a.txt');
    yes('a*', 'a');
    yes('?.c', 'x.c');
    no('?.c', '.c');
    no('?.c', 'xy.c');
    no('a?b', 'a/b');
    yes('/home/*/x', '/home/me/x');
    no('/home/*/x', '/home/me/sub/x');
  });

  it('** crosses directories, and as a segment also matches zero of them', () => {
    yes('**', 'a/b/c');
    yes('**', '');
    yes('a/**/b', 'a/b');
    yes('a/**/b', 'a/x/b');
    yes('a/**/b', 'a/x/y/b');
    no('a/**/b', 'a/xb');
    no('a/**/b', 'ab');
    yes('**/x', 'x');
    yes('**/x', 'a/b/x');
    no('**/x', 'ax');
    yes('x/**', 'x/a');
    yes('x/**', 'x/a/b');
    no('x/**', 'x');
    no('x/**', 'xy/a');
    yes('a**z', 'a/b/z');
    yes('/**/*.c', '/src/deep/n.c');
    yes('/**/*.c', '/n.c');
  });

  it('character classes, escapes and regex metacharacters', () => {
    yes('[abc].md', 'b.md');
    no('[abc].md', 'd.md');
    yes('[a-c]x', 'bx');
    no('[a-c]x', 'dx');
    yes('[!a]x', 'bx');
    no('[!a]x', 'ax');
    yes('[^a]x', 'bx');
    no('[!a]x', '/x');
    yes('[]]', ']');
    yes('x[', 'x[');
    yes('\\*', '*');
    no('\\*', 'a');
    yes('file(1)+$^.txt', 'file(1)+$^.txt');
    no('a.c', 'abc');
    yes('*|*', 'a|b');
    expect(() => compileGlob('oops\\')).toThrow(expect.objectContaining({ code: ArcaErrorCode.InvalidArgument }));
  });
});

describe('diff and find on real snapshots', () => {
  const dirs = new TempDirs();
  let store: Store;
  let src: string;
  let s1: SnapshotRecord;
  let s2: SnapshotRecord;
  const sizes: Record<string, number> = {};

  beforeAll(async () => {
    const storeDir = await dirs.make('arca-diff-store-');
    src = await dirs.make('arca-diff-src-');
    store = await initStore(storeDir);
    const same: Record<string, Buffer> = {};
    for (let i = 0; i < 10; i++) same[`same/d${i}/f.txt`] = random(500 + i);
    await writeFiles(src, {
      ...same,
      'a.txt': random(5000),
      'b.txt': 'b\n',
      'c.txt': random(700),
      l: random(300),
      'docs/readme.md': '# readme\n',
      'docs/guide.md': '# guide\n',
      'gone/x.md': random(100),
      'gone/sub/y.md': random(200),
    });
    s1 = await snap(store, src);

    // only `src` itself is a directory whose entries change: its own metadata event (at `src`) is
    // outside what the assertions look at
    sizes.aOld = 5000;
    sizes.c = 700;
    sizes.l = 300;
    sizes.x = 100;
    sizes.y = 200;
    await writeFile(path.join(src, 'a.txt'), random(6000));
    sizes.aNew = 6000;
    await chmod(path.join(src, 'b.txt'), 0o600);
    await unlink(path.join(src, 'c.txt'));
    await unlink(path.join(src, 'l'));
    await symlink('a.txt', path.join(src, 'l'));
    await rm(path.join(src, 'gone'), { recursive: true });
    await writeFiles(src, { 'd.txt': random(1234), 'newdir/n1.c': random(111), 'newdir/deep/n2.c': random(222) });
    s2 = await snap(store, src);
  });
  afterAll(() => dirs.cleanup());

  const under = (changes: SnapshotChange[]) =>
    changes.filter((c) => c.path.startsWith(src + '/')).map((c) => [c.change, path.relative(src, c.path)]);

  async function collect(a: SnapshotRecord, b: SnapshotRecord): Promise<SnapshotChange[]> {
    const out: SnapshotChange[] = [];
    for await (const c of diffSnapshots(store, a, b)) out.push(c);
    return out;
  }

  it('lists every change in path order', async () => {
    const changes = await collect(s1, s2);
    expect(under(changes)).toEqual([
      ['modified', 'a.txt'],
      ['metadata', 'b.txt'],
      ['removed', 'c.txt'],
      ['added', 'd.txt'],
      ['removed', 'gone'],
      ['removed', 'gone/sub'],
      ['removed', 'gone/sub/y.md'],
      ['removed', 'gone/x.md'],
      ['type-changed', 'l'],
      ['added', 'newdir'],
      ['added', 'newdir/deep'],
      ['added', 'newdir/deep/n2.c'],
      ['added', 'newdir/n1.c'],
    ]);
    const byPath = new Map(changes.map((c) => [path.relative(src, c.path), c]));
    expect(byPath.get('b.txt')!.before!.mode & 0o777).toBe(0o644 & ~process.umask());
    expect(byPath.get('b.txt')!.after!.mode & 0o777).toBe(0o600);
    expect(byPath.get('l')!.before!.type).toBe('file');
    expect(byPath.get('l')!.after!.type).toBe('symlink');
    expect(byPath.get('d.txt')!.before).toBeUndefined();
    expect(byPath.get('c.txt')!.after).toBeUndefined();

    // reversed direction: added <-> removed
    const back = under(await collect(s2, s1));
    expect(back.filter(([k]) => k === 'added').map(([, p]) => p)).toEqual(['c.txt', 'gone', 'gone/sub', 'gone/sub/y.md', 'gone/x.md']);
    expect(back.filter(([k]) => k === 'removed').map(([, p]) => p)).toEqual(['d.txt', 'newdir', 'newdir/deep', 'newdir/deep/n2.c', 'newdir/n1.c']);
  });

  it('counts changes with diffStats', async () => {
    const changes = (await collect(s1, s2)).filter((c) => c.path.startsWith(src + '/'));
    const stats = await diffStats(changes);
    expect(stats).toEqual({
      added: 5,
      removed: 5,
      modified: 1,
      typeChanged: 1,
      metadata: 1,
      files: { added: 3, removed: 3, modified: 1 },
      dirs: { added: 2, removed: 2 },
      bytesAdded: 1234 + 111 + 222 + sizes.aNew!,
      bytesRemoved: sizes.c! + sizes.x! + sizes.y! + sizes.aOld! + sizes.l!,
    });
    // also straight from the generator
    expect((await diffStats(diffSnapshots(store, s1, s2))).modified).toBe(1);
  });

  it('does not read subtrees that are the same on both sides', async () => {
    await store.loadIndex();
    const sameNode = await findNode(store, s1.snapshot.tree, path.join(src, 'same'));
    const docsNode = await findNode(store, s1.snapshot.tree, path.join(src, 'docs'));
    expect(sameNode!.subtree).toBe((await findNode(store, s2.snapshot.tree, path.join(src, 'same')))!.subtree);
    const untouched = new Set([sameNode!.subtree!, docsNode!.subtree!]);
    for (const n of (await loadTree(store, sameNode!.subtree!)).nodes) untouched.add(n.subtree!);
    expect(untouched.size).toBe(12);

    const spy = vi.spyOn(store, 'readBlob');
    try {
      await collect(s1, s2);
      const treesRead = spy.mock.calls.filter(([, type]) => type === BlobType.Tree).map(([id]) => id);
      expect(treesRead.length).toBeGreaterThan(0);
      expect(treesRead.filter((id) => untouched.has(id))).toEqual([]);
      // identical snapshots: nothing at all is read
      spy.mockClear();
      expect(await collect(s1, s1)).toEqual([]);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('finds by base name, by relative path and by anchored path, across snapshots', async () => {
    async function find(patterns: string[], snaps = [s1, s2]) {
      const out: [string, string][] = [];
      for await (const m of findInSnapshots(store, patterns, snaps)) {
        expect(m.path.startsWith('/')).toBe(true);
        out.push([m.snapshot.id === s1.id ? 's1' : 's2', m.path.startsWith(src + '/') ? path.relative(src, m.path) : m.path]);
      }
      return out;
    }
    expect(await find(['*.md'])).toEqual([
      ['s1', 'docs/guide.md'],
      ['s1', 'docs/readme.md'],
      ['s1', 'gone/sub/y.md'],
      ['s1', 'gone/x.md'],
      ['s2', 'docs/guide.md'],
      ['s2', 'docs/readme.md'],
    ]);
    expect(await find(['newdir/**/*.c'])).toEqual([
      ['s2', 'newdir/deep/n2.c'],
      ['s2', 'newdir/n1.c'],
    ]);
    expect(await find([`${src}/?.txt`])).toEqual([
      ['s1', 'a.txt'],
      ['s1', 'b.txt'],
      ['s1', 'c.txt'],
      ['s2', 'a.txt'],
      ['s2', 'b.txt'],
      ['s2', 'd.txt'],
    ]);
    // a relative path pattern matches at any depth but whole segments only
    expect(await find(['docs/readme.md'], [s2])).toEqual([['s2', 'docs/readme.md']]);
    expect(await find(['ocs/readme.md'], [s2])).toEqual([]);
    // a node matching several patterns is reported once; directories and symlinks match too
    expect(await find(['l', '[l]', 'sam?'], [s2])).toEqual([
      ['s2', 'l'],
      ['s2', 'same'],
    ]);
    expect((await find(['f.txt'], [s1])).map(([, p]) => p)).toEqual(Array.from({ length: 10 }, (_, i) => `same/d${i}/f.txt`));
    await expect(find([])).rejects.toMatchObject({ code: ArcaErrorCode.InvalidArgument });
  });
});
