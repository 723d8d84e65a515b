import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3rver, type S3rverServer } from '@arca/test-support';
import { backup, check, openBackend, parseS3Url, resolveSnapshot, restore, Store } from '../src/index.ts';
import { describeTree, tempDir, TEST_KDF, SMALL_CHUNKER } from './support/engine-fixtures.ts';

describe('a store on S3 (real S3 protocol, s3rver)', () => {
  let server: S3rverServer;
  let tmp: { dir: string; cleanup: () => void };

  beforeAll(async () => {
    server = await startS3rver();
    tmp = tempDir();
  });
  afterAll(async () => {
    tmp.cleanup();
    await server.stop();
  });

  it('takes static credentials from the environment it is given', () => {
    const opts = parseS3Url('s3://bucket-name/p', { AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'SECRET', AWS_SESSION_TOKEN: 'TOKEN' });
    expect(opts.credentials).toEqual({ accessKeyId: 'AKID', secretAccessKey: 'SECRET', sessionToken: 'TOKEN' });
    expect(parseS3Url('s3://bucket-name/p', {}).credentials).toBeUndefined();
  });

  it('backs up, checks and restores byte-identically through an s3:// URL', async () => {
    const src = path.join(tmp.dir, 'src');
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'big.bin'), randomBytes(300_000));
    writeFileSync(path.join(src, 'sub/text.txt'), 'over the wire\n'.repeat(1000));
    const env = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
    const url = `s3://${server.bucket}/stores/one?endpoint=${encodeURIComponent(server.endpoint)}`;
    const store = await Store.init(openBackend(url, env), { passphrase: 'pw', kdf: TEST_KDF, chunker: SMALL_CHUNKER, packSize: 64 * 1024 });
    const { id } = await backup(store, { paths: [src] });

    const reopened = await Store.open(openBackend(url, env), { passphrase: 'pw' });
    expect((await check(reopened, { readData: true })).errors).toEqual([]);
    const out = path.join(tmp.dir, 'out');
    const r = await restore(reopened, await resolveSnapshot(reopened, id), { target: out, subPath: src });
    expect(r.warnings).toEqual([]);
    expect(describeTree(out)).toEqual(describeTree(src));
  });
});
