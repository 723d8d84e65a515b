import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArcaErrorCode } from '../src/errors/arca-error.ts';
import { FsBackend } from '../src/backend/fs-backend.ts';
import { MemBackend } from '../src/backend/mem-backend.ts';
import { parseS3Url, S3Backend, type S3BackendOptions } from '../src/backend/s3-backend.ts';
import { listAll } from '../src/backend/storage-backend.ts';
import { startS3rver, type S3rverServer } from '@arca/test-support';
import { describeBackendConformance, expectArcaError } from './backend-conformance.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'arca-fs-backend-'));
}

async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

describeBackendConformance('MemBackend', async () => {
  const backend = new MemBackend();
  return { backend, cleanup: () => backend.close() };
});

describeBackendConformance('FsBackend', async () => {
  const dir = await tempDir();
  const backend = new FsBackend(dir);
  return {
    backend,
    cleanup: async () => {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('FsBackend specifics', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it('never shows temp files in list(), even while puts are in flight', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const backend = new FsBackend(dir);
    const expected = new Set<string>();
    const puts: Promise<void>[] = [];
    const seen: string[][] = [];
    for (let i = 0; i < 40; i++) {
      const name = `packs/${(i % 4).toString(16).padStart(2, '0')}/p${i}`;
      expected.add(name);
      puts.push(backend.put(name, randomBytes(64 * 1024)));
      if (i % 8 === 0) seen.push((await listAll(backend, 'packs/')).map((o) => o.name));
    }
    while (puts.length) {
      seen.push((await listAll(backend, '')).map((o) => o.name));
      await puts.shift();
    }
    for (const snapshot of seen) {
      for (const n of snapshot) {
        expect(expected.has(n), `unexpected name in list(): ${n}`).toBe(true);
        expect(n.endsWith('.tmp')).toBe(false);
      }
    }
    const final = (await listAll(backend, '')).map((o) => o.name).sort();
    expect(final).toEqual([...expected].sort());
    // and nothing stays behind on disk either
    const onDisk = (await walkFiles(dir)).map((f) => path.relative(dir, f).split(path.sep).join('/')).sort();
    expect(onDisk).toEqual(final);
  });

  it('creates files with mode 0600', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const backend = new FsBackend(dir);
    const old = process.umask(0o022);
    try {
      await backend.put('config', Buffer.from('cfg'));
      await backend.put('packs/ab/p1', randomBytes(100));
      await backend.put('config', Buffer.from('overwritten'));
    } finally {
      process.umask(old);
    }
    for (const file of await walkFiles(dir)) {
      expect(((await stat(file)).mode & 0o777).toString(8), file).toBe('600');
    }
  });
});

describe('S3Backend on s3rver', () => {
  let server: S3rverServer;
  const open: S3Backend[] = [];

  const backendFor = (prefix: string, overrides: Partial<S3BackendOptions> = {}): S3Backend => {
    const backend = new S3Backend({
      bucket: server.bucket,
      prefix,
      endpoint: server.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      ...overrides,
    });
    open.push(backend);
    return backend;
  };

  beforeAll(async () => {
    server = await startS3rver();
  });

  afterAll(async () => {
    for (const b of open.splice(0)) await b.close();
    await server?.stop();
  });

  // every test gets its own prefix in the one bucket, so the stores are independent and empty
  let counter = 0;
  describeBackendConformance('S3Backend (s3rver)', async () => {
    const backend = backendFor(`conformance/run-${++counter}-${randomBytes(4).toString('hex')}`);
    return {
      backend,
      cleanup: async () => {
        for await (const o of backend.list('')) await backend.delete(o.name);
        await backend.close();
      },
    };
  });

  it('describes itself without credentials', () => {
    const b = backendFor('/stores/laptop/');
    expect(b.location).toBe(`s3://${server.bucket}/stores/laptop`);
    expect(b.location).not.toContain(server.accessKeyId);
    expect(backendFor('').location).toBe(`s3://${server.bucket}`);
  });

  it('keeps stores under sibling prefixes apart', async () => {
    const a = backendFor('iso/a');
    const ab = backendFor('iso/ab');
    const root = backendFor('');
    await a.put('config', Buffer.from('A'));
    await ab.put('config', Buffer.from('AB'));
    expect((await listAll(a, '')).map((o) => o.name)).toEqual(['config']);
    expect((await listAll(ab, '')).map((o) => o.name)).toEqual(['config']);
    expect((await a.get('config')).toString()).toBe('A');
    expect((await root.get('iso/ab/config')).toString()).toBe('AB');
    expect((await listAll(root, 'iso/')).map((o) => o.name).sort()).toEqual(['iso/a/config', 'iso/ab/config']);
    await a.delete('config');
    await ab.delete('config');
  });

  it('paginates list() past 1000 objects', async () => {
    const b = backendFor(`paged-${randomBytes(4).toString('hex')}`);
    const total = 1005;
    const wanted = Array.from({ length: total }, (_, i) => `index/${i.toString().padStart(5, '0')}`);
    const queue = [...wanted];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let n = queue.shift(); n !== undefined; n = queue.shift()) await b.put(n, Buffer.from(n));
      }),
    );
    const got = (await listAll(b, 'index/')).map((o) => o.name).sort();
    expect(got.length).toBe(total);
    expect(got).toEqual(wanted);
    const dq = [...wanted];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let n = dq.shift(); n !== undefined; n = dq.shift()) await b.delete(n);
      }),
    );
    expect(await listAll(b, '')).toEqual([]);
  }, 120_000);

  it('reports a missing bucket as BACKEND_ERROR with a hint and no credentials', async () => {
    const secret = 'TOP-SECRET-VALUE-123';
    const b = backendFor('x', { bucket: 'no-such-bucket', credentials: { accessKeyId: 'S3RVER', secretAccessKey: secret } });
    for (const op of [() => b.put('config', Buffer.from('x')), () => listAll(b, '')]) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ name: 'ArcaError', code: ArcaErrorCode.BackendError });
      const e = err as Error & { hint?: string };
      expect(e.message).toContain('no-such-bucket');
      expect(e.hint).toMatch(/bucket/);
      expect(`${e.message} ${e.hint} ${String(e.cause)}`).not.toContain(secret);
    }
  });

  it('reports an unreachable endpoint as BACKEND_ERROR', async () => {
    const b = backendFor('x', { endpoint: 'http://127.0.0.1:1' });
    const err = await b.get('config').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'ArcaError', code: ArcaErrorCode.BackendError });
    expect((err as Error).message).toContain('config');
    expect((err as { hint?: string }).hint).toMatch(/endpoint/);
  }, 60_000);

  it('works with options parsed from an s3:// URL', async () => {
    const opts = parseS3Url(`s3://${server.bucket}/from-url/store?endpoint=${encodeURIComponent(server.endpoint)}`, {});
    const b = backendFor('ignored', { ...opts });
    expect(b.location).toBe(`s3://${server.bucket}/from-url/store`);
    await b.put('config', Buffer.from('via url'));
    expect((await b.get('config')).toString()).toBe('via url');
    await b.delete('config');
  });
});

describe('parseS3Url', () => {
  it('parses bucket, prefix and query parameters', () => {
    expect(parseS3Url('s3://my-bucket/some/prefix?endpoint=http://127.0.0.1:9000&path-style=true&region=eu-west-1', {})).toEqual({
      bucket: 'my-bucket',
      prefix: 'some/prefix',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      region: 'eu-west-1',
    });
  });

  it('defaults to the bucket root, us-east-1 and virtual-host addressing on AWS', () => {
    expect(parseS3Url('s3://my.bucket', {})).toEqual({ bucket: 'my.bucket', prefix: '', region: 'us-east-1' });
    expect(parseS3Url('s3://my-bucket/', {})).toEqual({ bucket: 'my-bucket', prefix: '', region: 'us-east-1' });
    expect(parseS3Url('s3://my-bucket//a//b/', {}).prefix).toBe('a/b');
  });

  it('falls back to the environment', () => {
    const env = { ARCA_S3_ENDPOINT: 'https://minio.local:9000', ARCA_S3_PATH_STYLE: 'false', AWS_REGION: 'ap-south-1' };
    expect(parseS3Url('s3://bkt/p', env)).toEqual({
      bucket: 'bkt',
      prefix: 'p',
      endpoint: 'https://minio.local:9000',
      forcePathStyle: false,
      region: 'ap-south-1',
    });
    // query parameters win over the environment
    expect(parseS3Url('s3://bkt/p?region=us-west-2&path-style=1', env)).toMatchObject({ region: 'us-west-2', forcePathStyle: true });
    // a custom endpoint defaults to path-style addressing
    expect(parseS3Url('s3://bkt?endpoint=http://localhost:4568', {}).forcePathStyle).toBe(true);
  });

  it('rejects bad URLs with INVALID_ARGUMENT and an example', () => {
    const bad = [
      'https://bucket/prefix',
      's3://',
      's3://ab',
      's3://My_Bucket/x',
      's3://-bucket',
      's3://bu..cket',
      's3://192.168.1.1/x',
      `s3://${'a'.repeat(64)}`,
      's3://bucket/a/../b',
      's3://bucket?endpoint=ftp://x',
      's3://bucket?endpoint=not a url',
      's3://bucket?path-style=maybe',
      's3://bucket?pathstyle=true',
      's3://bucket:9000/x',
      'not a url at all',
    ];
    for (const url of bad) {
      let err: unknown;
      try {
        parseS3Url(url, {});
      } catch (e) {
        err = e;
      }
      expect(err, url).toMatchObject({ name: 'ArcaError', code: ArcaErrorCode.InvalidArgument });
      expect((err as { hint?: string }).hint, url).toContain('s3://my-bucket/');
    }
  });

  it('refuses credentials in the URL without echoing them', async () => {
    await expectArcaError(Promise.resolve().then(() => parseS3Url('s3://AKIAXXX:hunter2@bucket/x', {})), ArcaErrorCode.InvalidArgument);
    try {
      parseS3Url('s3://AKIAXXX:hunter2@bucket/x', {});
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('hunter2');
      expect(String((e as Error).message)).not.toContain('AKIAXXX');
    }
  });
});
