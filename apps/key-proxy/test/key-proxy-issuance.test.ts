import { readFileSync } from 'node:fs';
import path from 'node:path';
import { aeadOpen, aeadSeal, AuthenticationError } from '@arca/crypto';
import { agentKeysResponseSchema, keysResponseSchema } from '@arca/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope } from '../src/keys/envelope.ts';
import { Agent, call, initStore, newWorkspace, startTestProxy, storeId, type TestProxy, type Workspace } from './helpers/key-proxy-harness.ts';

const blobId = (n: number) => Buffer.alloc(32, n).toString('hex');

describe('key issuance (happy paths)', () => {
  let ws: Workspace;
  let proxy: TestProxy;
  const agent = new Agent();
  const storeA = storeId();
  const storeB = storeId();
  let envelopeA: string;
  let envelopeB: string;

  beforeAll(async () => {
    ws = await newWorkspace();
    proxy = await startTestProxy(ws.env({ ARCA_KP_AUDIT_FILE: path.join(ws.dir, 'audit.jsonl') }));
    envelopeA = await initStore(proxy.url, ws.issuer, agent, storeA);
    envelopeB = await initStore(proxy.url, ws.issuer, agent, storeB);
  });
  afterAll(async () => {
    await proxy?.close();
    ws?.cleanup();
  });

  async function keys(store: string, envelope: string, ids: string[], purpose: 'read' | 'write' = 'read', files: Array<{ kind: number; keyId: string }> = []) {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    const r = await call(proxy.url, `/v1/stores/${store}/keys`, { token, signer: agent.identity, body: { envelope, purpose, blobIds: ids, files } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return keysResponseSchema.parse(r.body);
  }

  async function agentKeys(store: string, envelope: string) {
    const token = await agent.token(ws.issuer, { ops: ['restore'], store });
    const r = await call(proxy.url, `/v1/stores/${store}/agent-keys`, { token, signer: agent.identity, body: { envelope } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return agentKeysResponseSchema.parse(r.body);
  }

  it('init returns only an envelope bound to the org and store', () => {
    expect(envelopeA.startsWith('arca-env1.')).toBe(true);
    const decoded = decodeEnvelope(envelopeA);
    expect(decoded).toMatchObject({ v: 1, provider: 'local', org: 'org-1', store: storeA });
    expect(decoded.ct.length).toBeGreaterThan(40);
  });

  it('refuses a second init for the same store with 409 MASTER_KEY_EXISTS', async () => {
    const token = await agent.token(ws.issuer, { ops: ['init'], store: storeA });
    const r = await call(proxy.url, `/v1/stores/${storeA}/master-key`, { token, signer: agent.identity, body: {} });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ error: { code: 'MASTER_KEY_EXISTS' } });
  });

  it('issues agent keys, stable across requests, different between stores', async () => {
    const a1 = await agentKeys(storeA, envelopeA);
    const a2 = await agentKeys(storeA, envelopeA);
    const b = await agentKeys(storeB, envelopeB);
    expect(a1).toEqual(a2);
    expect(a1.macKey).not.toBe(a1.chunkerKey);
    expect(b.macKey).not.toBe(a1.macKey);
    expect(b.chunkerKey).not.toBe(a1.chunkerKey);
  });

  it('issues blob and file keys in request order, stable, read = write, different between stores and IDs', async () => {
    const ids = [blobId(1), blobId(2), blobId(3)];
    const files = [{ kind: 2, keyId: '40'.repeat(16) }, { kind: 3, keyId: '40'.repeat(16) }];
    const w = await keys(storeA, envelopeA, ids, 'write', files);
    const r = await keys(storeA, envelopeA, [ids[2]!, ids[0]!], 'read', [files[1]!]);
    expect(w.blobKeys).toHaveLength(3);
    expect(w.fileKeys).toHaveLength(2);
    expect(new Set(w.blobKeys).size).toBe(3);
    expect(w.fileKeys[0]).not.toBe(w.fileKeys[1]); // kind is part of the derivation
    expect(r.blobKeys).toEqual([w.blobKeys[2], w.blobKeys[0]]);
    expect(r.fileKeys).toEqual([w.fileKeys[1]]);
    const other = await keys(storeB, envelopeB, ids, 'write', files);
    for (let i = 0; i < 3; i++) expect(other.blobKeys[i]).not.toBe(w.blobKeys[i]);
    expect(other.fileKeys[0]).not.toBe(w.fileKeys[0]);
    // empty lists are fine (and may be omitted)
    expect(await keys(storeA, envelopeA, [])).toEqual({ blobKeys: [], fileKeys: [] });
  });

  it('issues a batch of 10,000 keys', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => i.toString(16).padStart(64, '0'));
    const r = await keys(storeA, envelopeA, ids, 'write');
    expect(r.blobKeys).toHaveLength(10_000);
    expect(new Set(r.blobKeys).size).toBe(10_000);
  });

  it('keys derived for store A never decrypt store B\'s blobs', async () => {
    const id = blobId(7);
    const [keyA] = (await keys(storeA, envelopeA, [id], 'write')).blobKeys;
    const [keyB] = (await keys(storeB, envelopeB, [id], 'read')).blobKeys;
    const ad = Buffer.concat([Buffer.from('arca/blob/v1'), Buffer.of(0, 0), Buffer.from(id, 'hex')]);
    const sealed = aeadSeal(Buffer.from(keyA!, 'base64url'), Buffer.from('secret chunk of store A'), ad);
    expect(aeadOpen(Buffer.from(keyA!, 'base64url'), sealed, ad).toString()).toBe('secret chunk of store A');
    expect(() => aeadOpen(Buffer.from(keyB!, 'base64url'), sealed, ad)).toThrow(AuthenticationError);
  });

  it('refuses an envelope copied to another store, or relabeled to it (403 / 502)', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store: storeB });
    // A's envelope sent for store B: the envelope names store A
    const copied = await call(proxy.url, `/v1/stores/${storeB}/agent-keys`, { token, signer: agent.identity, body: { envelope: envelopeA } });
    expect(copied.status).toBe(403);
    expect(copied.body).toMatchObject({ error: { code: 'STORE_MISMATCH' } });
    // A's wrapped key relabeled as B's: the provider's AAD binding refuses it
    const relabeled = encodeEnvelope({ ...decodeEnvelope(envelopeA), store: storeB });
    const token2 = await agent.token(ws.issuer, { ops: ['backup'], store: storeB });
    const r = await call(proxy.url, `/v1/stores/${storeB}/agent-keys`, { token: token2, signer: agent.identity, body: { envelope: relabeled } });
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ error: { code: 'PROVIDER_ERROR' } });
    expect(JSON.stringify(r.body)).not.toContain(decodeEnvelope(envelopeA).ct);
  });

  it('rewraps an envelope: same org/store, same keys', async () => {
    const rotator = new Agent('rotator');
    const token = await rotator.token(ws.issuer, { ops: ['rewrap'], store: storeA });
    const r = await call<{ envelope: string }>(proxy.url, '/v1/envelopes/rewrap', { token, signer: rotator.identity, body: { envelope: envelopeA } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.envelope).not.toBe(envelopeA);
    expect(decodeEnvelope(r.body.envelope)).toMatchObject({ org: 'org-1', store: storeA, provider: 'local' });
    expect(await agentKeys(storeA, r.body.envelope)).toEqual(await agentKeys(storeA, envelopeA));
    expect((await keys(storeA, r.body.envelope, [blobId(9)])).blobKeys).toEqual((await keys(storeA, envelopeA, [blobId(9)])).blobKeys);
  });

  it('serves healthz, readyz and metrics with the keys issued', async () => {
    expect(await call(proxy.url, '/healthz', { method: 'GET' })).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await call(proxy.url, '/readyz', { method: 'GET' })).toMatchObject({ status: 200, body: { status: 'ready', provider: 'local' } });
    const metrics = await call<string>(proxy.url, '/metrics', { method: 'GET' });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/arca_kp_keys_issued_total\{purpose="write",kind="blob"\} \d+/);
    expect(metrics.body).toMatch(/arca_kp_keys_issued_total\{purpose="agent",kind="mac"\} \d+/);
    expect(metrics.body).toMatch(/arca_kp_master_keys_created_total 2/);
    expect(metrics.body).toMatch(/arca_kp_refusals_total\{code="MASTER_KEY_EXISTS"\} 1/);
    expect(metrics.body).toMatch(/arca_kp_requests_total\{route="POST \/v1\/stores\/:storeId\/keys",status="200"\} \d+/);
    expect(metrics.body).toMatch(/arca_kp_key_cache_hits_total \d+/);
    expect(metrics.body).toContain('arca_kp_provider_duration_seconds_bucket');
  });

  it('writes issuance and refusal events with counts to the audit JSONL file', async () => {
    await proxy.close(); // flushes the audit log
    const events = readFileSync(path.join(ws.dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.find((e) => e.operation === 'master-key' && e.outcome === 'success' && e.store === storeA)).toMatchObject({
      org: 'org-1', agent: 'agent-1', agentKeyThumbprint: agent.thumbprint, tokenOps: ['init'], requestId: expect.any(String),
    });
    expect(events.find((e) => e.operation === 'keys' && e.blobKeys === 10_000)).toMatchObject({ purpose: 'write', fileKeys: 0, outcome: 'success' });
    expect(events.find((e) => e.operation === 'keys' && e.fileKeys === 2)).toMatchObject({ purpose: 'write', blobKeys: 3 });
    expect(events.find((e) => e.outcome === 'refused' && e.code === 'MASTER_KEY_EXISTS')).toMatchObject({ operation: 'master-key', store: storeA });
    expect(events.find((e) => e.operation === 'rewrap')).toMatchObject({ outcome: 'success', agent: 'rotator' });
    const seqs = events.map((e) => e.seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const text = readFileSync(path.join(ws.dir, 'audit.jsonl'), 'utf8');
    expect(text).not.toContain(decodeEnvelope(envelopeA).ct);
  });
});

describe('keys survive a restart', () => {
  it('gives the same keys after a restart from the same data dir and KEK', async () => {
    const ws = await newWorkspace();
    try {
      const agent = new Agent();
      const store = storeId();
      let proxy = await startTestProxy(ws.env());
      const envelope = await initStore(proxy.url, ws.issuer, agent, store);
      const ask = async () => {
        const token = await agent.token(ws.issuer, { ops: ['restore'], store });
        const k = await call(proxy.url, `/v1/stores/${store}/keys`, { token, signer: agent.identity, body: { envelope, purpose: 'read', blobIds: [blobId(1)] } });
        const token2 = await agent.token(ws.issuer, { ops: ['restore'], store });
        const a = await call(proxy.url, `/v1/stores/${store}/agent-keys`, { token: token2, signer: agent.identity, body: { envelope } });
        return { k: k.body, a: a.body };
      };
      const before = await ask();
      await proxy.close();
      proxy = await startTestProxy(ws.env());
      try {
        expect(await ask()).toEqual(before);
        // the registry survived too: a second init is still refused
        const token = await agent.token(ws.issuer, { ops: ['init'], store });
        expect((await call(proxy.url, `/v1/stores/${store}/master-key`, { token, signer: agent.identity, body: {} })).status).toBe(409);
      } finally {
        await proxy.close();
      }
    } finally {
      ws.cleanup();
    }
  });
});
