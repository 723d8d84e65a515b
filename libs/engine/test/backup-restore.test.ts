import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArcaErrorCode, backup, BlobType, check, findNode, FsBackend, isArcaError, resolveSnapshot, restore, Store, walkTree, listSnapshots } from '../src/index.ts';
import { sealBlob } from '../src/format/blob-codec.ts';
import { describeTree, newStore, reopen, tempDir, TEST_KDF } from './support/engine-fixtures.ts';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

/** A source tree with every kind of entry a restore must reproduce. */
function makeSource(root: string): void {
  mkdirSync(path.join(root, 'docs/nested/deeper'), { recursive: true });
  mkdirSync(path.join(root, 'empty-dir'));
  writeFileSync(path.join(root, 'docs/readme.txt'), 'hello arca\n');
  writeFileSync(path.join(root, 'docs/empty.txt'), '');
  writeFileSync(path.join(root, 'docs/nested/deeper/random.bin'), randomBytes(300_000));
  writeFileSync(path.join(root, 'docs/nested/text.log'), 'line of log text\n'.repeat(20_000));
  writeFileSync(path.join(root, 'script.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(path.join(root, 'script.sh'), 0o750);
  writeFileSync(path.join(root, 'secret.key'), 'k');
  chmodSync(path.join(root, 'secret.key'), 0o600);
  symlinkSync('docs/readme.txt', path.join(root, 'link-to-readme'));
  symlinkSync('/nonexistent/target', path.join(root, 'dangling-link'));
  linkSync(path.join(root, 'docs/readme.txt'), path.join(root, 'hardlink-to-readme'));
  // a name that is not valid UTF-8, and one of 255 bytes (the usual maximum)
  writeFileSync(Buffer.concat([Buffer.from(root + '/'), Buffer.from([0x66, 0xff, 0xfe, 0x2e, 0x74])]), 'latin-1 name');
  writeFileSync(path.join(root, 'n'.repeat(251) + '.txt'), 'long name');
  utimesSync(path.join(root, 'docs/readme.txt'), new Date('2020-02-02T02:02:02.123Z'), new Date('2020-02-02T02:02:02.123Z'));
  utimesSync(path.join(root, 'empty-dir'), new Date('2019-01-01T00:00:00Z'), new Date('2019-01-01T00:00:00Z'));
}

describe('backup and restore', () => {
  it('restores content and metadata byte-identically, with hard links, symlinks and odd names', async () => {
    const src = path.join(tmp.dir, 'src');
    makeSource(src);
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    const result = await backup(store, { paths: [src] });
    expect(result.warnings).toEqual([]);
    expect(result.snapshot.summary!.filesNew).toBeGreaterThanOrEqual(9);

    const target = path.join(tmp.dir, 'out');
    const reopened = await reopen(path.join(tmp.dir, 'store'));
    const restored = await restore(reopened, await resolveSnapshot(reopened, result.id.slice(0, 10)), { target, subPath: src });
    expect(restored.warnings).toEqual([]);
    expect(describeTree(target)).toEqual(describeTree(src));
    // hard links come back as hard links
    expect(statSync(path.join(target, 'hardlink-to-readme')).ino).toBe(statSync(path.join(target, 'docs/readme.txt')).ino);
  });

  it('stores absolute paths and restores a single file by path', async () => {
    const src = path.join(tmp.dir, 'src');
    makeSource(src);
    const store = await newStore(path.join(tmp.dir, 'store'));
    const { id } = await backup(store, { paths: [src] });
    const paths: string[] = [];
    for await (const e of walkTree(store, (await resolveSnapshot(store, id)).snapshot.tree)) paths.push(e.path);
    expect(paths).toContain(`${src}/docs/readme.txt`);
    const target = path.join(tmp.dir, 'one');
    await restore(store, await resolveSnapshot(store, 'latest'), { target, subPath: `${src}/docs/nested/text.log` });
    expect(readFileSync(path.join(target, 'text.log'))).toEqual(readFileSync(path.join(src, 'docs/nested/text.log')));
  });

  it('an unchanged tree is not read again, and a change is picked up', async () => {
    const src = path.join(tmp.dir, 'src');
    makeSource(src);
    const storeDir = path.join(tmp.dir, 'store');
    const first = await backup(await newStore(storeDir, { small: true }), { paths: [src] });
    const second = await backup(await reopen(storeDir), { paths: [src] });
    expect(second.snapshot.parent).toBe(first.id);
    expect(second.snapshot.summary!.bytesRead).toBe(0);
    expect(second.snapshot.summary!.dataBlobsNew).toBe(0);
    // only the directories above the source (whose metadata changed) need new trees
    expect(first.snapshot.summary!.treeBlobsNew).toBeGreaterThanOrEqual(first.snapshot.summary!.dirs);
    expect(second.snapshot.summary!.treeBlobsNew).toBeLessThan(first.snapshot.summary!.treeBlobsNew);
    // the directory's tree is the same blob (the root differs: it records /tmp's own metadata)
    const s2 = await reopen(storeDir);
    expect((await findNode(s2, second.snapshot.tree, src))!.subtree).toBe((await findNode(s2, first.snapshot.tree, src))!.subtree);

    writeFileSync(path.join(src, 'docs/readme.txt'), 'changed content\n');
    const third = await backup(await reopen(storeDir), { paths: [src] });
    expect(third.snapshot.summary!.filesChanged).toBeGreaterThanOrEqual(1);
    expect(third.snapshot.summary!.bytesRead).toBe('changed content\n'.length);
    const out = path.join(tmp.dir, 'out');
    const s = await reopen(storeDir);
    await restore(s, await resolveSnapshot(s, third.id), { target: out, subPath: src });
    expect(readFileSync(path.join(out, 'docs/readme.txt'), 'utf8')).toBe('changed content\n');
    expect(readFileSync(path.join(out, 'hardlink-to-readme'), 'utf8')).toBe('changed content\n');
  });

  it('deduplicates identical content across files and across snapshots', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    const data = randomBytes(200_000);
    writeFileSync(path.join(src, 'a.bin'), data);
    writeFileSync(path.join(src, 'b.bin'), data);
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    const r = await backup(store, { paths: [src] });
    expect(r.snapshot.summary!.bytesNew).toBe(200_000);
  });

  it('applies exclude rules in gitignore syntax', async () => {
    const src = path.join(tmp.dir, 'src');
    makeSource(src);
    mkdirSync(path.join(src, 'build'));
    writeFileSync(path.join(src, 'build/out.o'), 'obj');
    writeFileSync(path.join(src, 'keep.log'), 'keep');
    const excludeFile = path.join(tmp.dir, 'excludes');
    writeFileSync(excludeFile, '# comment\nbuild/\n');
    const store = await newStore(path.join(tmp.dir, 'store'));
    const { id } = await backup(store, { paths: [src], excludes: ['*.log', '!keep.log'], excludeFiles: [excludeFile] });
    const names: string[] = [];
    for await (const e of walkTree(store, (await resolveSnapshot(store, id)).snapshot.tree)) names.push(path.basename(e.path));
    expect(names).not.toContain('build');
    expect(names).not.toContain('text.log');
    expect(names).toContain('keep.log');
    expect(names).toContain('readme.txt');
  });

  it('a blob whose content equals a tree encoding is still restored as data', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(path.join(src, 'empty'), { recursive: true });
    writeFileSync(path.join(src, 'tree-lookalike.json'), '{"nodes":[],"version":1}');
    const store = await newStore(path.join(tmp.dir, 'store'));
    const { id } = await backup(store, { paths: [src] });
    const out = path.join(tmp.dir, 'out');
    const r = await restore(store, await resolveSnapshot(store, id), { target: out, subPath: src });
    expect(r.warnings).toEqual([]);
    expect(readFileSync(path.join(out, 'tree-lookalike.json'), 'utf8')).toBe('{"nodes":[],"version":1}');
  });

  it('refuses a wrong passphrase and a missing store with actionable errors', async () => {
    const storeDir = path.join(tmp.dir, 'store');
    await newStore(storeDir);
    const wrong = await Store.open(new FsBackend(storeDir), { passphrase: 'nope' }).catch((e: unknown) => e);
    expect(isArcaError(wrong, ArcaErrorCode.WrongPassphrase)).toBe(true);
    expect(String((wrong as Error).message)).not.toContain('nope');
    const missing = await Store.open(new FsBackend(path.join(tmp.dir, 'none')), { passphrase: 'x' }).catch((e: unknown) => e);
    expect(isArcaError(missing, ArcaErrorCode.StoreNotFound)).toBe(true);
    expect((missing as { hint?: string }).hint).toContain('arca init');
    const again = await Store.init(new FsBackend(storeDir), { passphrase: 'x', kdf: TEST_KDF }).catch((e: unknown) => e);
    expect(isArcaError(again, ArcaErrorCode.StoreExists)).toBe(true);
  });

  it('a damaged pack costs only the files that use it', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'victim.bin'), randomBytes(50_000));
    writeFileSync(path.join(src, 'other.txt'), 'unaffected\n');
    const storeDir = path.join(tmp.dir, 'store');
    const store = await newStore(storeDir);
    const { id } = await backup(store, { paths: [src] });
    // flip one byte inside the victim's blob
    const victimBlob = [...store.index.entries()].find(([, e]) => e.rawLength === 50_000)!;
    const packFile = path.join(storeDir, 'packs', victimBlob[1].packId.slice(0, 2), victimBlob[1].packId);
    const bytes = readFileSync(packFile);
    bytes[victimBlob[1].offset + 100]! ^= 0xff;
    writeFileSync(packFile, bytes);

    const s = await reopen(storeDir);
    const out = path.join(tmp.dir, 'out');
    const r = await restore(s, await resolveSnapshot(s, id), { target: out, subPath: src });
    expect(readFileSync(path.join(out, 'other.txt'), 'utf8')).toBe('unaffected\n');
    expect(r.warnings.map((w) => path.basename(w.path))).toEqual(['victim.bin']);
    expect(r.warnings[0]!.message).toMatch(/damaged/);
  });

  it('a truncated pack is named by check, and the files outside it still restore', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'in-first-pack.bin'), randomBytes(80_000));
    const storeDir = path.join(tmp.dir, 'store');
    const store = await newStore(storeDir, { small: true });
    await backup(store, { paths: [src] });
    writeFileSync(path.join(src, 'later.txt'), 'written in a later backup\n');
    const second = await backup(await reopen(storeDir), { paths: [src] });
    // cut the pack holding the big file's first blob in half, as an interrupted copy would
    const s = await reopen(storeDir);
    await s.loadIndex();
    const node = (await findNode(s, second.snapshot.tree, `${src}/in-first-pack.bin`))!;
    const packId = s.index.get(node.content![0]!)!.packId;
    const packFile = path.join(storeDir, 'packs', packId.slice(0, 2), packId);
    writeFileSync(packFile, readFileSync(packFile).subarray(0, Math.floor(statSync(packFile).size / 2)));

    const report = await check(await reopen(storeDir), {});
    expect(report.ok).toBe(false);
    expect(report.errors.some((e) => e.pack === packId)).toBe(true);
    const damagedFiles = report.damagedBlobs.flatMap((b) => b.files.map((f) => f.path));
    expect(damagedFiles).toContain(`${src}/in-first-pack.bin`);
    expect(damagedFiles).not.toContain(`${src}/later.txt`);

    const out = path.join(tmp.dir, 'out');
    const s2 = await reopen(storeDir);
    const r = await restore(s2, await resolveSnapshot(s2, second.id), { target: out, subPath: src });
    expect(readFileSync(path.join(out, 'later.txt'), 'utf8')).toBe('written in a later backup\n');
    expect(r.warnings.map((w) => path.basename(w.path))).toEqual(['in-first-pack.bin']);
  });

  it('two backups into one store at the same time both succeed', async () => {
    const a = path.join(tmp.dir, 'a');
    const b = path.join(tmp.dir, 'b');
    makeSource(a);
    mkdirSync(b);
    writeFileSync(path.join(b, 'shared.bin'), readFileSync(path.join(a, 'docs/nested/deeper/random.bin')));
    const storeDir = path.join(tmp.dir, 'store');
    await newStore(storeDir, { small: true });
    const [ra, rb] = await Promise.all([backup(await reopen(storeDir), { paths: [a] }), backup(await reopen(storeDir), { paths: [b] })]);
    const s = await reopen(storeDir);
    expect((await listSnapshots(s)).map((x) => x.id).sort()).toEqual([ra.id, rb.id].sort());
    for (const [rec, dir] of [[ra, a], [rb, b]] as const) {
      const out = path.join(tmp.dir, `out-${path.basename(dir)}`);
      await restore(s, await resolveSnapshot(s, rec.id), { target: out, subPath: dir });
      expect(describeTree(out)).toEqual(describeTree(dir));
    }
  });

  const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;

  it.skipIf(!canMount)('--one-file-system records a mount point but not what is mounted there', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(path.join(src, 'mnt'), { recursive: true });
    writeFileSync(path.join(src, 'local.txt'), 'local');
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path.join(src, 'mnt')]).status).toBe(0);
    try {
      writeFileSync(path.join(src, 'mnt/other-fs.txt'), 'elsewhere');
      const store = await newStore(path.join(tmp.dir, 'store'));
      const { id } = await backup(store, { paths: [src], oneFileSystem: true });
      const paths: string[] = [];
      for await (const e of walkTree(store, (await resolveSnapshot(store, id)).snapshot.tree)) paths.push(e.path);
      expect(paths).toContain(`${src}/local.txt`);
      expect(paths).toContain(`${src}/mnt`);
      expect(paths).not.toContain(`${src}/mnt/other-fs.txt`);
      const all = await backup(store, { paths: [src] });
      const allPaths: string[] = [];
      for await (const e of walkTree(store, (await resolveSnapshot(store, all.id)).snapshot.tree)) allPaths.push(e.path);
      expect(allPaths).toContain(`${src}/mnt/other-fs.txt`);
    } finally {
      spawnSync('umount', [path.join(src, 'mnt')]);
    }
  });

  it('reports a path that vanished before the backup started', async () => {
    const store = await newStore(path.join(tmp.dir, 'store'));
    const err = await backup(store, { paths: [path.join(tmp.dir, 'does-not-exist')] }).catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.SourceNotFound)).toBe(true);
    expect(existsSync(path.join(tmp.dir, 'store', 'snapshots'))).toBe(false);
  });
});

describe('incremental backup of an edited large file', () => {
  it('cuts the same chunks as a backup without a parent, and restores the new content', async () => {
    // small chunks, so that a 3 MB file is a "large" file read in segments with many chunks
    const store = await newStore(path.join(tmp.dir, 'store'), { small: true });
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    const original = randomBytes(3_000_000);
    writeFileSync(path.join(src, 'disk.img'), original);
    const first = await backup(store, { paths: [src] });

    const edited = Buffer.concat([original.subarray(0, 1_500_000), randomBytes(5000), original.subarray(1_500_000, 2_500_000), original.subarray(2_600_000)]);
    writeFileSync(path.join(src, 'disk.img'), edited);
    const second = await backup(store, { paths: [src] });
    expect(second.snapshot.parent).toBe(first.id);
    // the same content under another path has no parent: plain FastCDC over the whole file
    const other = path.join(tmp.dir, 'other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'disk.img'), edited);
    const plain = await backup(store, { paths: [other] });
    expect(plain.snapshot.parent).toBeUndefined();

    const hinted = (await findNode(store, second.snapshot.tree, `${src}/disk.img`))!.content;
    expect(hinted).toEqual((await findNode(store, plain.snapshot.tree, `${other}/disk.img`))!.content);
    expect(plain.snapshot.summary!.dataBlobsNew).toBe(0);
    // only the chunks around the edits are new
    expect(second.snapshot.summary!.dataBlobsNew).toBeLessThan(hinted!.length / 10);

    const target = path.join(tmp.dir, 'out');
    await restore(store, await resolveSnapshot(store, second.id), { target, subPath: src });
    expect(readFileSync(path.join(target, 'disk.img')).equals(edited)).toBe(true);
  });
});

describe('a blob whose content does not match its ID', () => {
  it('is refused on restore and on read even though it decrypts (a writer holding its key forged it)', async () => {
    const dir = path.join(tmp.dir, 'store');
    const store = await Store.init(new FsBackend(dir), { passphrase: 'pw-for-forgery-test', kdf: TEST_KDF, zstdLevel: 0 });
    const src = path.join(tmp.dir, 'src');
    mkdirSync(src);
    const original = Buffer.from('the real content of the file\n'.repeat(100));
    writeFileSync(path.join(src, 'a.txt'), original);
    const { id } = await backup(store, { paths: [src] });
    const snap = await resolveSnapshot(store, id);
    const [blobId] = (await findNode(store, snap.snapshot.tree, `${src}/a.txt`))!.content!;
    const entry = store.index.get(blobId!)!;
    // what an agent with this blob's write key could do: seal other content of the same length under the same ID
    const forged = Buffer.alloc(original.length, 'x');
    const [key] = await store.keys.blobKeys([Buffer.from(blobId!, 'hex')], 'write');
    const sealed = sealBlob(key!, Buffer.from(blobId!, 'hex'), BlobType.Data, forged, 0);
    expect(sealed.bytes.length).toBe(entry.length);
    const packPath = path.join(dir, 'packs', entry.packId.slice(0, 2), entry.packId);
    const pack = readFileSync(packPath);
    sealed.bytes.copy(pack, entry.offset);
    writeFileSync(packPath, pack);

    const fresh = await reopen(dir, 'pw-for-forgery-test');
    await expect(fresh.readBlob(blobId!)).rejects.toThrow(/does not match its ID/);
    const target = path.join(tmp.dir, 'out');
    const restored = await restore(fresh, await resolveSnapshot(fresh, id), { target, subPath: src });
    expect(restored.warnings.map((w) => w.message).join('\n')).toMatch(/does not match its ID/);
    expect(existsSync(path.join(target, 'a.txt')) && readFileSync(path.join(target, 'a.txt')).equals(forged)).toBe(false);
  });
});
