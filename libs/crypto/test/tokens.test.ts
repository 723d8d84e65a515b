import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedJWK, jwtVerify, SignJWT } from 'jose';
import {
  createProof, generateAgentIdentity, agentIdentityFromPem, exportAgentPrivateKey, issueJobToken, JobTokenVerifier, jwkThumbprint,
  publicJwkOf, ReplayCache, sha256Base64url, TokenErrorCode, verifyProof, type AgentIdentity, type IssueJobTokenInput,
} from '../src/index.ts';

const ISSUER = 'https://control-plane.test';
const STORE = 'ab'.repeat(32);

function signingKey(kid: string): { privateKey: KeyObject; kid: string; jwk: Record<string, unknown> } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, kid, jwk: { ...publicJwkOf(publicKey), kid, alg: 'EdDSA', use: 'sig' } };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

describe('job tokens', () => {
  const issuerKey = signingKey('cp-1');
  const agent = generateAgentIdentity();
  const verifier = new JobTokenVerifier({ issuer: ISSUER, source: { jwks: { keys: [issuerKey.jwk] } } });
  const input = (over: Partial<IssueJobTokenInput> = {}): IssueJobTokenInput => ({
    issuer: ISSUER, org: 'org-1', agent: 'agent-1', store: STORE, job: 'job-1', ops: ['backup'],
    agentKeyThumbprint: agent.thumbprint, lifetimeSeconds: 600, ...over,
  });

  it('verifies a token issued by the configured issuer and returns its claims', async () => {
    const claims = await verifier.verify(await issueJobToken(input(), issuerKey));
    expect(claims).toMatchObject({ iss: ISSUER, aud: 'arca-key-proxy', org: 'org-1', agent: 'agent-1', store: STORE, job: 'job-1', ops: ['backup'], cnf: { jkt: agent.thumbprint } });
    expect(claims.exp - claims.iat).toBe(600);
  });

  it('refuses an expired token with TOKEN_EXPIRED', async () => {
    const old = Math.floor(Date.now() / 1000) - 3600;
    await expectCode(verifier.verify(await issueJobToken(input({ now: old }), issuerKey)), TokenErrorCode.TokenExpired);
  });

  it('refuses a cached token once it expires', async () => {
    const token = await issueJobToken(input({ lifetimeSeconds: 10 }), issuerKey);
    await verifier.verify(token);
    await expectCode(verifier.verify(token, Date.now() + 3600_000), TokenErrorCode.TokenExpired);
  });

  it('refuses tokens from another issuer key, issuer or audience, and tampered tokens', async () => {
    const rogue = signingKey('cp-1');
    await expectCode(verifier.verify(await issueJobToken(input(), rogue)), TokenErrorCode.TokenInvalid);
    await expectCode(verifier.verify(await issueJobToken(input({ issuer: 'https://evil.test' }), issuerKey)), TokenErrorCode.TokenInvalid);
    await expectCode(verifier.verify(await issueJobToken(input({ audience: 'someone-else' }), issuerKey)), TokenErrorCode.TokenInvalid);
    const token = await issueJobToken(input(), issuerKey);
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...payload, store: 'cd'.repeat(32) })).toString('base64url');
    await expectCode(verifier.verify(`${h}.${forged}.${s}`), TokenErrorCode.TokenInvalid);
    await expectCode(verifier.verify('not-a-token'), TokenErrorCode.TokenInvalid);
  });

  it('refuses a proof presented as a token (wrong typ) and tokens without a key binding', async () => {
    const proof = await createProof(agent, { method: 'POST', url: 'https://kp.test/v1/x', token: 't', body: '' });
    await expectCode(verifier.verify(proof), TokenErrorCode.TokenInvalid);
    await expectCode(verifier.verify(await issueJobToken(input({ agentKeyThumbprint: 'short' }), issuerKey)), TokenErrorCode.TokenInvalid);
  });

  it('refuses lifetimes over 24 hours at issue time', async () => {
    await expect(issueJobToken(input({ lifetimeSeconds: 25 * 3600 }), issuerKey)).rejects.toThrow(/lifetime/);
  });

  it('fetches the issuer keys from a JWKS URL', async () => {
    let server: Server | undefined;
    try {
      server = createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [issuerKey.jwk] }));
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const remote = new JobTokenVerifier({ issuer: ISSUER, source: { jwksUrl: `http://127.0.0.1:${port}/jwks.json` } });
      expect((await remote.verify(await issueJobToken(input(), issuerKey))).job).toBe('job-1');
    } finally {
      await new Promise((resolve) => server?.close(resolve));
    }
  });
});

describe('proof of possession', () => {
  const agent: AgentIdentity = generateAgentIdentity();
  const url = 'https://kp.test/v1/stores/abc/keys';
  const token = 'job-token';
  const body = JSON.stringify({ purpose: 'read', blobIds: [] });
  let cache: ReplayCache;
  beforeAll(() => {
    cache = new ReplayCache({ ttlMs: 120_000 });
  });
  afterAll(() => {
    expect(cache.size).toBeGreaterThan(0);
  });

  const verify = (proof: string, over: Partial<{ method: string; url: string; token: string; body: string; expectedJkt: string }> = {}, now?: number) =>
    verifyProof(proof, { method: 'POST', url, token, body, expectedJkt: agent.thumbprint, replayCache: cache, ...over }, now);

  it('accepts a fresh proof for the same request once, and refuses its replay', async () => {
    const proof = await createProof(agent, { method: 'POST', url, token, body });
    await verify(proof);
    await expectCode(verify(proof), TokenErrorCode.ProofReplayed);
  });

  it('refuses a proof signed by another key than the token is bound to', async () => {
    const thief = generateAgentIdentity();
    await expectCode(verify(await createProof(thief, { method: 'POST', url, token, body })), TokenErrorCode.ProofInvalid);
  });

  it('refuses a proof for another method, URL, token or body', async () => {
    const make = () => createProof(agent, { method: 'POST', url, token, body });
    await expectCode(verify(await make(), { method: 'GET' }), TokenErrorCode.ProofInvalid);
    await expectCode(verify(await make(), { url: 'https://kp.test/v1/stores/other/keys' }), TokenErrorCode.ProofInvalid);
    await expectCode(verify(await make(), { token: 'another-token' }), TokenErrorCode.ProofInvalid);
    await expectCode(verify(await make(), { body: JSON.stringify({ purpose: 'write', blobIds: [] }) }), TokenErrorCode.ProofInvalid);
  });

  it('refuses a proof made too long ago or in the future', async () => {
    await expectCode(verify(await createProof(agent, { method: 'POST', url, token, body }, Math.floor(Date.now() / 1000) - 300)), TokenErrorCode.ProofInvalid);
    await expectCode(verify(await createProof(agent, { method: 'POST', url, token, body }, Math.floor(Date.now() / 1000) + 300)), TokenErrorCode.ProofInvalid);
  });

  it('interoperates with a standard JOSE library in both directions', async () => {
    const ours = await createProof(agent, { method: 'POST', url, token, body });
    const { payload, protectedHeader } = await jwtVerify(ours, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['EdDSA'] });
    expect(protectedHeader.jwk).toEqual(agent.publicJwk);
    expect(payload).toMatchObject({ htm: 'POST', htu: url });
    const theirs = await new SignJWT({ htm: 'POST', htu: url, ath: sha256Base64url(token), bdh: sha256Base64url(body) })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'dpop+jwt', jwk: agent.publicJwk })
      .setIssuedAt()
      .setJti('0123456789abcdef0123')
      .sign(agent.privateKey);
    await verify(theirs);
  });

  it('refuses a forged signature, a private key in the header, and alg "none"', async () => {
    const proof = await createProof(agent, { method: 'POST', url, token, body });
    const [h, p, sig] = proof.split('.') as [string, string, string];
    const flipped = Buffer.from(sig, 'base64url');
    flipped[0]! ^= 1;
    await expectCode(verify(`${h}.${p}.${flipped.toString('base64url')}`), TokenErrorCode.ProofInvalid);
    const withD = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'dpop+jwt', jwk: { ...agent.publicJwk, d: 'AAAA' } })).toString('base64url');
    await expectCode(verify(`${withD}.${p}.${sig}`), TokenErrorCode.ProofInvalid);
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: agent.publicJwk })).toString('base64url');
    await expectCode(verify(`${none}.${p}.`), TokenErrorCode.ProofInvalid);
    await expectCode(verify('a.b'), TokenErrorCode.ProofInvalid);
  });

  it('ignores the query string in the URL binding', async () => {
    await verify(await createProof(agent, { method: 'POST', url: `${url}?a=1`, token, body }), { url: `${url}?b=2` });
  });
});

describe('agent identity', () => {
  it('round-trips through PEM with the same thumbprint (RFC 7638 for OKP keys)', () => {
    const identity = generateAgentIdentity();
    const again = agentIdentityFromPem(exportAgentPrivateKey(identity));
    expect(again.thumbprint).toBe(identity.thumbprint);
    expect(jwkThumbprint(identity.publicJwk)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('matches the RFC 8037 appendix A.3 thumbprint example', () => {
    expect(jwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' })).toBe('kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
  });

  it('refuses a key that is not Ed25519', () => {
    const { privateKey } = generateKeyPairSync('x25519');
    expect(() => agentIdentityFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }))).toThrow(/Ed25519/);
  });
});

describe('replay cache', () => {
  it('forgets IDs after the TTL and stays within its bound', () => {
    const cache = new ReplayCache({ ttlMs: 1000, maxEntries: 3 });
    expect(cache.checkAndRemember('a', 0)).toBe(true);
    expect(cache.checkAndRemember('a', 500)).toBe(false);
    expect(cache.checkAndRemember('a', 1500)).toBe(true);
    for (const id of ['b', 'c', 'd', 'e']) cache.checkAndRemember(id, 1600);
    expect(cache.size).toBe(3);
  });
});
