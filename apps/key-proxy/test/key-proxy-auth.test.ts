import { sign, type KeyObject } from 'node:crypto';
import { createProof, generateAgentIdentity } from '@arca/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, call, initStore, ISSUER, newIssuer, newWorkspace, startTestProxy, storeId, type TestProxy, type Workspace } from './helpers/key-proxy-harness.ts';

/** A compact EdDSA JWT signed with node:crypto, for tokens the real issuer would never make. */
function signJwt(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc(header)}.${enc(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

describe('authentication and authorization refusals', () => {
  let ws: Workspace;
  let proxy: TestProxy;
  const agent = new Agent();
  const store = storeId();
  const otherStore = storeId();
  let envelope: string;
  let otherEnvelope: string;
  const blobIds = [Buffer.alloc(32, 1).toString('hex')];

  beforeAll(async () => {
    ws = await newWorkspace();
    proxy = await startTestProxy(ws.env());
    envelope = await initStore(proxy.url, ws.issuer, agent, store);
    otherEnvelope = await initStore(proxy.url, ws.issuer, agent, otherStore);
  });
  afterAll(async () => {
    await proxy?.close();
    ws?.cleanup();
  });

  const keysPath = (s = store) => `/v1/stores/${s}/keys`;
  const expectRefusal = (r: { status: number; body: unknown }, status: number, code: string) => {
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    expect(r.body).toMatchObject({ error: { code, message: expect.any(String) } });
  };

  it('accepts the well-formed request used as the baseline below', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    expect((await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope, purpose: 'write', blobIds } })).status).toBe(200);
  });

  it('refuses a token for another store than the URL (403 STORE_MISMATCH)', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store: otherStore });
    expectRefusal(await call(proxy.url, keysPath(store), { token, signer: agent.identity, body: { envelope, purpose: 'read', blobIds } }), 403, 'STORE_MISMATCH');
  });

  it('refuses a token for another organization than the envelope (403 STORE_MISMATCH)', async () => {
    const intruder = new Agent('agent-x', 'org-2', agent.identity);
    const token = await intruder.token(ws.issuer, { ops: ['backup'], store });
    expectRefusal(await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope, purpose: 'read', blobIds } }), 403, 'STORE_MISMATCH');
  });

  it('refuses another store\'s envelope (403 STORE_MISMATCH)', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    expectRefusal(await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope: otherEnvelope, purpose: 'read', blobIds } }), 403, 'STORE_MISMATCH');
  });

  it('refuses operations the token does not allow (403 OPERATION_NOT_ALLOWED)', async () => {
    const restore = await agent.token(ws.issuer, { ops: ['restore', 'check'], store });
    const r = await call(proxy.url, keysPath(), { token: restore, signer: agent.identity, body: { envelope, purpose: 'write', blobIds } });
    expectRefusal(r, 403, 'OPERATION_NOT_ALLOWED');
    expect((r.body as { error: { message: string } }).error.message).toMatch(/init, backup, prune/);
    // read keys are fine for restore
    const restore2 = await agent.token(ws.issuer, { ops: ['restore'], store });
    expect((await call(proxy.url, keysPath(), { token: restore2, signer: agent.identity, body: { envelope, purpose: 'read', blobIds } })).status).toBe(200);
    // a backup token cannot rewrap
    const backup = await agent.token(ws.issuer, { ops: ['backup'], store });
    expectRefusal(await call(proxy.url, '/v1/envelopes/rewrap', { token: backup, signer: agent.identity, body: { envelope } }), 403, 'OPERATION_NOT_ALLOWED');
    // a rewrap token gets no keys
    const rewrap = await agent.token(ws.issuer, { ops: ['rewrap'], store });
    expectRefusal(await call(proxy.url, `/v1/stores/${store}/agent-keys`, { token: rewrap, signer: agent.identity, body: { envelope } }), 403, 'OPERATION_NOT_ALLOWED');
    // a backup token cannot create a master key
    const backup2 = await agent.token(ws.issuer, { ops: ['backup'], store: storeId() });
    const s = JSON.parse(Buffer.from(backup2.split('.')[1]!, 'base64url').toString()).store as string;
    expectRefusal(await call(proxy.url, `/v1/stores/${s}/master-key`, { token: backup2, signer: agent.identity, body: {} }), 403, 'OPERATION_NOT_ALLOWED');
  });

  it('refuses an expired token (401 TOKEN_EXPIRED)', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store, now: Math.floor(Date.now() / 1000) - 3600, lifetimeSeconds: 600 });
    const r = await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope, purpose: 'read', blobIds } });
    expectRefusal(r, 401, 'TOKEN_EXPIRED');
    expect(r.headers.get('www-authenticate')).toMatch(/^DPoP/);
  });

  it('refuses a replayed request (401 PROOF_REPLAYED)', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    const body = { envelope, purpose: 'read', blobIds };
    const first = await call(proxy.url, keysPath(), { token, signer: agent.identity, body });
    expect(first.status).toBe(200);
    expectRefusal(await call(proxy.url, keysPath(), { token, proof: first.proof!, body }), 401, 'PROOF_REPLAYED');
  });

  it('refuses a proof for another body, URL or token (401 PROOF_INVALID)', async () => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    const body = JSON.stringify({ envelope, purpose: 'read', blobIds });
    const proof = await createProof(agent.identity, { method: 'POST', url: proxy.url + keysPath(), token, body });
    const altered = JSON.stringify({ envelope, purpose: 'write', blobIds });
    expectRefusal(await call(proxy.url, keysPath(), { token, proof, rawBody: altered }), 401, 'PROOF_INVALID');
    expectRefusal(await call(proxy.url, keysPath(), { token, signer: agent.identity, rawBody: body, proofUrl: `http://evil.test${keysPath()}` }), 401, 'PROOF_INVALID');
    const otherToken = await agent.token(ws.issuer, { ops: ['backup'], store });
    const proof2 = await createProof(agent.identity, { method: 'POST', url: proxy.url + keysPath(), token: otherToken, body });
    expectRefusal(await call(proxy.url, keysPath(), { token, proof: proof2, rawBody: body }), 401, 'PROOF_INVALID');
  });

  it('gives nothing for the control plane\'s token alone, without the agent\'s private key', async () => {
    const token = await agent.token(ws.issuer, { ops: ['init', 'backup'], store });
    const body = { envelope, purpose: 'read', blobIds };
    // no proof at all
    expectRefusal(await call(proxy.url, keysPath(), { token, body }), 401, 'PROOF_INVALID');
    // a proof signed by another key (e.g. the control plane's own)
    expectRefusal(await call(proxy.url, keysPath(), { token, signer: generateAgentIdentity(), body }), 401, 'PROOF_INVALID');
    expectRefusal(await call(proxy.url, `/v1/stores/${store}/agent-keys`, { token, signer: generateAgentIdentity(), body: { envelope } }), 401, 'PROOF_INVALID');
  });

  it('refuses a token that is not bound to an agent key (401 TOKEN_INVALID)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: ISSUER, aud: 'arca-key-proxy', sub: 'agent:a', org: 'org-1', agent: 'a', store, job: 'j', ops: ['backup'], iat: now, nbf: now, exp: now + 600, jti: 'unbound-token-1' };
    const token = signJwt({ alg: 'EdDSA', typ: 'arca-job+jwt', kid: ws.issuer.kid }, claims, ws.issuer.privateKey);
    expectRefusal(await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope, purpose: 'read', blobIds } }), 401, 'TOKEN_INVALID');
  });

  it('refuses tokens from an unknown issuer key, another issuer or audience (401 TOKEN_INVALID)', async () => {
    const rogue = newIssuer('cp-1'); // same kid, another key
    const unknownKid = newIssuer('cp-unknown');
    for (const [issuer, over] of [[rogue, {}], [unknownKid, {}], [ws.issuer, { issuer: 'https://evil.test' }], [ws.issuer, { audience: 'other' }]] as const) {
      const token = await agent.token(issuer, { ops: ['backup'], store, ...over });
      expectRefusal(await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope, purpose: 'read', blobIds } }), 401, 'TOKEN_INVALID');
    }
  });

  it('refuses requests without credentials and with a malformed Authorization header', async () => {
    expectRefusal(await call(proxy.url, keysPath(), { body: { envelope, purpose: 'read', blobIds } }), 401, 'TOKEN_INVALID');
    const r = await fetch(proxy.url + keysPath(), { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer abc' }, body: '{}' });
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ error: { code: 'TOKEN_INVALID' } });
  });

  it('never echoes the token, the proof or the envelope ciphertext in a refusal', async () => {
    const token = await agent.token(ws.issuer, { ops: ['restore'], store });
    const r = await call(proxy.url, keysPath(), { token, signer: agent.identity, body: { envelope, purpose: 'write', blobIds } });
    const text = JSON.stringify(r.body);
    expect(text).not.toContain(token);
    expect(text).not.toContain(r.proof!);
    expect(text).not.toContain(envelope.slice(20, 80));
  });
});
