import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, call, newWorkspace, runCli, startTestProxy, storeId, type TestProxy, type Workspace } from './helpers/key-proxy-harness.ts';

/**
 * Strict mode (the default): no key for an agent key a custodian has not approved for the store,
 * whatever the control plane's token says. The grants are managed with the real CLI, run as a
 * separate process on the same data directory while the proxy runs.
 */
describe('strict mode and grants', () => {
  let ws: Workspace;
  let proxy: TestProxy;
  const agent = new Agent();
  const store = storeId();
  let envelope: string;

  beforeAll(async () => {
    ws = await newWorkspace();
    proxy = await startTestProxy(ws.env({ ARCA_KP_STRICT: 'true' }));
  });
  afterAll(async () => {
    await proxy?.close();
    ws?.cleanup();
  });

  const grant = (...args: string[]) => runCli(['grant', ...args, '--data-dir', ws.dataDir]);
  const target = () => ['--org', 'org-1', '--store', store, '--agent-key-thumbprint', agent.thumbprint];

  async function init() {
    const token = await agent.token(ws.issuer, { ops: ['init'], store });
    return call<{ envelope: string; error: { code: string; message: string } }>(proxy.url, `/v1/stores/${store}/master-key`, { token, signer: agent.identity, body: {} });
  }

  async function readKeys(env: string) {
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    return call<{ error: { code: string; message: string } }>(proxy.url, `/v1/stores/${store}/keys`, {
      token, signer: agent.identity, body: { envelope: env, purpose: 'read', blobIds: ['ab'.repeat(32)] },
    });
  }

  it('refuses init for an unapproved agent key, naming the thumbprint and the command to run', async () => {
    const r = await init();
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('GRANT_REQUIRED');
    expect(r.body.error.message).toContain(agent.thumbprint);
    expect(r.body.error.message).toContain(`arca-key-proxy grant approve --org org-1 --store ${store} --agent-key-thumbprint ${agent.thumbprint}`);
  });

  it('works after `grant approve`', async () => {
    const approved = grant('approve', ...target(), '--note', 'ticket 42');
    expect(approved.status, approved.stderr).toBe(0);
    expect(approved.stdout).toContain('approved');
    const r = await init();
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    envelope = r.body.envelope;
    expect((await readKeys(envelope)).status).toBe(200);
    const listed = grant('list', '--json');
    expect(listed.status).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ org: 'org-1', store, agentKeyThumbprint: agent.thumbprint, note: 'ticket 42', ops: ['init', 'backup', 'restore', 'check', 'prune'] })]);
  });

  it('limits issuance to the granted operations', async () => {
    expect(grant('approve', ...target(), '--ops', 'restore,check').status).toBe(0);
    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    const r = await call<{ error: { code: string; message: string } }>(proxy.url, `/v1/stores/${store}/keys`, {
      token, signer: agent.identity, body: { envelope, purpose: 'write', blobIds: ['ab'.repeat(32)] },
    });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('GRANT_REQUIRED');
    expect(r.body.error.message).toMatch(/--ops restore,check,backup|--ops .*backup/);
    expect(grant('approve', ...target()).status).toBe(0);
  });

  it('refuses another agent key holding a valid token for the same store', async () => {
    const other = new Agent('agent-2');
    const token = await other.token(ws.issuer, { ops: ['backup'], store });
    const r = await call(proxy.url, `/v1/stores/${store}/agent-keys`, { token, signer: other.identity, body: { envelope } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: { code: 'GRANT_REQUIRED' } });
  });

  it('refuses again after `grant revoke`, and revoking twice is an error', async () => {
    const revoked = grant('revoke', ...target());
    expect(revoked.status, revoked.stderr).toBe(0);
    const r = await readKeys(envelope);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('GRANT_REQUIRED');
    const again = grant('revoke', ...target());
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/no grant/);
    expect(grant('list').stdout).toContain('no grants');
  });

  it('rejects bad command lines with exit status 2', () => {
    expect(grant('approve', '--org', 'o', '--store', 'not-hex', '--agent-key-thumbprint', agent.thumbprint).status).toBe(2);
    expect(grant('approve', ...target(), '--ops', 'backup,steal').status).toBe(2);
    expect(grant('approve', '--org', 'o').status).toBe(2);
    expect(runCli(['grant', 'list']).status).toBe(2); // no data dir
    expect(runCli(['no-such-command']).status).toBe(2);
    const help = runCli(['grant', 'approve', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Examples:');
  });

  it('records grant changes and refusals in the hash-chained audit log', async () => {
    await proxy.close();
    const verify = runCli(['audit', 'verify', '--json', '--data-dir', ws.dataDir]);
    expect(verify.status, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    const tail = runCli(['audit', 'tail', '-n', '100', '--json', '--data-dir', ws.dataDir]);
    const events = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.filter((e) => e.operation === 'grant-approve')).toHaveLength(3);
    expect(events.find((e) => e.operation === 'grant-revoke')).toMatchObject({ store, agentKeyThumbprint: agent.thumbprint });
    expect(events.find((e) => e.code === 'GRANT_REQUIRED' && e.operation === 'master-key')).toMatchObject({ outcome: 'refused', agent: 'agent-1' });
  });
});
