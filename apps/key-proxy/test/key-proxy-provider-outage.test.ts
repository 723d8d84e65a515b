import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// test/fakes is not an Nx project, so the boundary rule sees it as an external file; test-only.
import { startVaultTransitFake, type VaultTransitFake } from '@arca/test-fakes';
import { decodeEnvelope } from '../src/keys/envelope.ts';
import { Agent, call, initStore, newWorkspace, startTestProxy, storeId, type TestProxy, type Workspace } from './helpers/key-proxy-harness.ts';

/**
 * The proxy against a Vault transit fake (test/fakes: protocol-faithful, real crypto) configured
 * through the real environment variables, then a Vault outage: key requests that need an unwrap
 * get 503 PROVIDER_UNAVAILABLE and /readyz turns 503 with the reason; cached stores keep working.
 */
describe('Vault provider and provider outage', () => {
  const VAULT_TOKEN = 'hvs.test-token-for-the-fake';
  let ws: Workspace;
  let vault: VaultTransitFake;
  let proxy: TestProxy;
  const agent = new Agent();
  const cachedStore = storeId();
  const coldStore = storeId();
  let cachedEnvelope: string;
  let coldEnvelope: string;

  beforeAll(async () => {
    ws = await newWorkspace();
    vault = await startVaultTransitFake({ token: VAULT_TOKEN });
    await fetch(`${vault.url}/v1/transit/keys/arca`, {
      method: 'POST', headers: { 'x-vault-token': VAULT_TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'aes256-gcm96', derived: true }),
    });
    const tokenFile = path.join(ws.dir, 'vault-token');
    writeFileSync(tokenFile, `${VAULT_TOKEN}\n`, { mode: 0o600 });
    const env = ws.env({ ARCA_KP_PROVIDER: 'vault', ARCA_KP_VAULT_ADDR: vault.url, ARCA_KP_VAULT_TOKEN_FILE: tokenFile, ARCA_KP_VAULT_KEY: 'arca', ARCA_KP_CACHE_MAX_STORES: '1' });
    delete (env as Record<string, string | undefined>).ARCA_KP_LOCAL_KEK_FILE;
    proxy = await startTestProxy(env, { readinessCacheMs: 100 });
    cachedEnvelope = await initStore(proxy.url, ws.issuer, agent, cachedStore);
    coldEnvelope = await initStore(proxy.url, ws.issuer, agent, coldStore);
  });
  afterAll(async () => {
    await proxy?.close();
    await vault?.close();
    ws?.cleanup();
  });

  const agentKeys = async (store: string, envelope: string) => {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    return call<{ error?: { code: string; message: string } }>(proxy.url, `/v1/stores/${store}/agent-keys`, { token, signer: agent.identity, body: { envelope } });
  };

  it('wraps master keys in Vault transit', () => {
    const envelope = decodeEnvelope(cachedEnvelope);
    expect(envelope).toMatchObject({ provider: 'vault', kek: 'arca', store: cachedStore });
    expect(envelope.ct).toMatch(/^vault:v1:/);
  });

  it('is ready while Vault answers', async () => {
    expect((await call(proxy.url, '/readyz', { method: 'GET' })).status).toBe(200);
    expect((await agentKeys(cachedStore, cachedEnvelope)).status).toBe(200);
  });

  it('answers 503 PROVIDER_UNAVAILABLE for an unwrap during an outage, and /readyz 503 with the reason', async () => {
    vault.setUnavailable(true, 'sealed');
    await new Promise((resolve) => setTimeout(resolve, 150)); // readiness answers are cached for 100 ms here
    const ready = await call<{ status: string; reason: string }>(proxy.url, '/readyz', { method: 'GET' });
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('unavailable');
    expect(ready.body.reason.length).toBeGreaterThan(5);
    // a store whose keys are not cached needs an unwrap (the cache holds one store here)
    const unwrap = await agentKeys(coldStore, coldEnvelope);
    expect(unwrap.status).toBe(503);
    expect(unwrap.body.error).toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    // rewrapping always needs Vault
    const token = await agent.token(ws.issuer, { ops: ['rewrap'], store: coldStore });
    const rewrap = await call<{ error: { code: string } }>(proxy.url, '/v1/envelopes/rewrap', { token, signer: agent.identity, body: { envelope: coldEnvelope } });
    expect(rewrap.status).toBe(503);
    expect(rewrap.body.error.code).toBe('PROVIDER_UNAVAILABLE');
    // a store whose keys are cached keeps working through the outage
    expect((await agentKeys(cachedStore, cachedEnvelope)).status).toBe(200);
    const init = await agent.token(ws.issuer, { ops: ['init'], store: storeId() });
    const s = JSON.parse(Buffer.from(init.split('.')[1]!, 'base64url').toString()).store as string;
    const created = await call<{ error: { code: string } }>(proxy.url, `/v1/stores/${s}/master-key`, { token: init, signer: agent.identity, body: {} });
    expect(created.status).toBe(503);
    expect(created.body.error.code).toBe('PROVIDER_UNAVAILABLE');
    const metrics = await call<string>(proxy.url, '/metrics', { method: 'GET' });
    expect(metrics.body).toMatch(/arca_kp_provider_errors_total\{operation="rewrap",code="PROVIDER_UNAVAILABLE"\} 1/);
    expect(metrics.body).toMatch(/arca_kp_provider_errors_total\{operation="unwrap",code="PROVIDER_UNAVAILABLE"\} 1/);
  });

  it('recovers when Vault is back', async () => {
    vault.setUnavailable(false);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await call(proxy.url, '/readyz', { method: 'GET' })).status).toBe(200);
    const token = await agent.token(ws.issuer, { ops: ['rewrap'], store: coldStore });
    expect((await call(proxy.url, '/v1/envelopes/rewrap', { token, signer: agent.identity, body: { envelope: coldEnvelope } })).status).toBe(200);
    expect((await agentKeys(coldStore, coldEnvelope)).status).toBe(200);
  });
});
