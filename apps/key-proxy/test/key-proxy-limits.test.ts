import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, call, initStore, newWorkspace, startTestProxy, storeId, type TestProxy, type Workspace } from './helpers/key-proxy-harness.ts';

interface ErrorBody {
  error: { code: string; message: string; fields?: Array<{ path: string; message: string }> };
}

describe('request limits and validation', () => {
  let ws: Workspace;
  let proxy: TestProxy;
  const agent = new Agent();
  const store = storeId();
  let envelope: string;

  beforeAll(async () => {
    ws = await newWorkspace();
    proxy = await startTestProxy(ws.env({ ARCA_KP_RATE_LIMIT_KEYS_PER_SECOND: '100', ARCA_KP_RATE_LIMIT_BURST: '20000' }));
    envelope = await initStore(proxy.url, ws.issuer, agent, store);
  });
  afterAll(async () => {
    await proxy?.close();
    ws?.cleanup();
  });

  async function post(body: unknown, options: { rawBody?: string; contentType?: string; who?: Agent } = {}) {
    const who = options.who ?? agent;
    const token = await who.token(ws.issuer, { ops: ['backup'], store });
    return call<ErrorBody & { blobKeys: string[] }>(proxy.url, `/v1/stores/${store}/keys`, {
      token, signer: who.identity, body, ...(options.rawBody !== undefined ? { rawBody: options.rawBody } : {}),
      ...(options.contentType ? { contentType: options.contentType } : {}),
    });
  }

  it('refuses a body over 1 MiB with 413 TOO_LARGE', async () => {
    const r = await post(undefined, { rawBody: JSON.stringify({ envelope, purpose: 'read', blobIds: [], pad: 'x'.repeat(1024 * 1024) }) });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('TOO_LARGE');
    expect(r.body.error.message).toMatch(/larger than 1048576 bytes/);
  });

  it('refuses a chunked body over 1 MiB with 413 (no content-length)', async () => {
    const url = new URL(`${proxy.url}/v1/stores/${store}/keys`);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
      req.end();
    });
    expect(status).toBe(413);
  });

  it('refuses malformed JSON and a wrong content type with 400 INVALID_REQUEST', async () => {
    const bad = await post(undefined, { rawBody: '{"envelope": ' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'INVALID_REQUEST', message: 'the request body is not valid JSON' });
    const text = await post(undefined, { rawBody: 'hello', contentType: 'text/plain' });
    expect(text.status).toBe(400);
    expect(text.body.error.message).toMatch(/content-type: application\/json/);
  });

  it('names every invalid field', async () => {
    const r = await post({ envelope: 'nope', purpose: 'delete', blobIds: ['XYZ', 'ab'.repeat(32)], files: [{ kind: 999, keyId: '00' }] });
    expect(r.status).toBe(400);
    const paths = r.body.error.fields!.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['envelope', 'purpose', 'blobIds.0', 'files.0.kind', 'files.0.keyId']));
    expect(r.body.error.message).toMatch(/blobIds\.0: must be a blob ID/);
  });

  it('refuses more than 10,000 keys in one request', async () => {
    const ids = Array.from({ length: 10_001 }, (_, i) => i.toString(16).padStart(64, '0'));
    const r = await post({ envelope, purpose: 'read', blobIds: ids });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/at most 10000 keys/);
  });

  it('refuses a malformed envelope and a bad store ID in the URL', async () => {
    const r = await post({ envelope: 'arca-env1.eyJ2IjoyfQ', purpose: 'read', blobIds: [] });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/envelope is malformed/);
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    const bad = await call<ErrorBody>(proxy.url, '/v1/stores/NOT-A-STORE/keys', { token, signer: agent.identity, body: { envelope, purpose: 'read' } });
    expect(bad.status).toBe(400);
  });

  it('answers 404 for unknown endpoints', async () => {
    const r = await call<ErrorBody>(proxy.url, '/v1/nothing', { method: 'GET' });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NOT_FOUND');
    const wrongMethod = await call<ErrorBody>(proxy.url, `/v1/stores/${store}/keys`, { method: 'GET' });
    expect(wrongMethod.status).toBe(404);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
  });

  it('rate-limits an agent key with 429 RATE_LIMITED and retry-after, and not the others', async () => {
    const greedy = new Agent('greedy', 'org-1');
    const ids = Array.from({ length: 10_000 }, (_, i) => i.toString(16).padStart(64, '0'));
    expect((await post({ envelope, purpose: 'read', blobIds: ids }, { who: greedy })).status).toBe(200);
    expect((await post({ envelope, purpose: 'read', blobIds: ids }, { who: greedy })).status).toBe(200);
    const limited = await post({ envelope, purpose: 'read', blobIds: ids }, { who: greedy });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await post({ envelope, purpose: 'read', blobIds: ids.slice(0, 10) })).status).toBe(200);
    const metrics = await call<string>(proxy.url, '/metrics', { method: 'GET' });
    expect(metrics.body).toMatch(/arca_kp_rate_limited_total [1-9]/);
  });

  it('echoes a safe x-request-id and never caches responses', async () => {
    const r = await fetch(`${proxy.url}/healthz`, { headers: { 'x-request-id': 'trace-123' } });
    expect(r.headers.get('x-request-id')).toBe('trace-123');
    expect(r.headers.get('cache-control')).toBe('no-store');
    const evil = await fetch(`${proxy.url}/healthz`, { headers: { 'x-request-id': 'a b"c' } });
    expect(evil.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
