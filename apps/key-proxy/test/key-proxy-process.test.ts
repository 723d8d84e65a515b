import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeEnvelope } from '../src/keys/envelope.ts';
import { Agent, call, initStore, newWorkspace, runCli, spawnProxy, storeId, type SpawnedProxy, type Workspace } from './helpers/key-proxy-harness.ts';

/** `arca-key-proxy serve` as a real child process (Node 24), as the e2e tests and operators run it. */

interface Receiver {
  url: string;
  batches: Array<{ authorization: string | undefined; body: { proxy: string; events: Array<Record<string, unknown>> } }>;
  accept: boolean;
  close(): Promise<void>;
}

async function startAuditReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: '', batches: [], accept: false, close: async () => undefined };
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (!receiver.accept) {
        res.writeHead(503).end();
        return;
      }
      receiver.batches.push({ authorization: req.headers.authorization, body: JSON.parse(body) as Receiver['batches'][number]['body'] });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit/v1/events`;
  receiver.close = () => new Promise((resolve) => server.close(() => resolve()));
  return receiver;
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('arca-key-proxy serve (child process)', () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function workspace(): Promise<Workspace> {
    const ws = await newWorkspace();
    cleanups.push(() => ws.cleanup());
    return ws;
  }

  async function spawned(env: Record<string, string>): Promise<SpawnedProxy> {
    const proxy = await spawnProxy(env);
    cleanups.push(() => proxy.stop('SIGKILL'));
    return proxy;
  }

  it('prints one "listening" line, runs a full flow without logging secrets, and exits 0 on SIGTERM', async () => {
    const ws = await workspace();
    const proxy = await spawned(ws.env({ ARCA_KP_LOG_LEVEL: 'debug' }));
    const agent = new Agent();
    const store = storeId();
    const envelope = await initStore(proxy.url, ws.issuer, agent, store);
    const secrets: string[] = [decodeEnvelope(envelope).ct, envelope.slice(10)];

    const token = await agent.token(ws.issuer, { ops: ['backup'], store });
    secrets.push(token);
    const a = await call<{ macKey: string; chunkerKey: string }>(proxy.url, `/v1/stores/${store}/agent-keys`, { token, signer: agent.identity, body: { envelope } });
    expect(a.status).toBe(200);
    secrets.push(a.proof!, a.body.macKey, a.body.chunkerKey);
    const k = await call<{ blobKeys: string[]; fileKeys: string[] }>(proxy.url, `/v1/stores/${store}/keys`, {
      token, signer: agent.identity,
      body: { envelope, purpose: 'write', blobIds: ['11'.repeat(32), '22'.repeat(32)], files: [{ kind: 3, keyId: 'ab'.repeat(16) }] },
    });
    expect(k.status).toBe(200);
    secrets.push(k.proof!, ...k.body.blobKeys, ...k.body.fileKeys);
    // a refusal too
    const refused = await call(proxy.url, `/v1/stores/${store}/keys`, { token, proof: k.proof!, body: { envelope, purpose: 'read' } });
    expect(refused.status).toBe(401);

    expect(await proxy.stop('SIGTERM')).toBe(0);
    const out = proxy.stdout();
    const lines = out.trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(lines.filter((l) => l.includes('"msg":"listening"'))).toHaveLength(1);
    expect(JSON.parse(lines.find((l) => l.includes('"msg":"listening"'))!)).toMatchObject({ url: proxy.url, provider: 'local', strict: false });
    expect(lines.filter((l) => l.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(4);
    expect(out).toContain('"requestId"');
    expect(out).toContain('"msg":"stopped"');
    const forms = secrets.flatMap((s) => {
      const bytes = Buffer.from(s, 'base64url');
      return bytes.length === 32 ? [s, bytes.toString('hex'), bytes.toString('base64')] : [s];
    });
    for (const secret of forms) expect(out.includes(secret), `secret found in the log: ${secret.slice(0, 12)}...`).toBe(false);
    expect(proxy.stderr()).toBe('');
  });

  it('delivers audit events to the control plane, keeping them across restarts while it is down', async () => {
    const ws = await workspace();
    const receiver = await startAuditReceiver();
    cleanups.push(() => receiver.close());
    const tokenFile = path.join(ws.dir, 'audit-token');
    writeFileSync(tokenFile, 'audit-bearer-123\n', { mode: 0o600 });
    const env = ws.env({ ARCA_KP_AUDIT_URL: receiver.url, ARCA_KP_AUDIT_TOKEN_FILE: tokenFile });

    // first run: the control plane is down
    const first = await spawned(env);
    const agent = new Agent();
    const store = storeId();
    await initStore(first.url, ws.issuer, agent, store);
    expect(await first.stop()).toBe(0);
    expect(receiver.batches).toHaveLength(0);

    // a grant change made by the custodian while the proxy is stopped is delivered too
    expect(runCli(['grant', 'approve', '--org', 'org-1', '--store', store, '--agent-key-thumbprint', agent.thumbprint, '--data-dir', ws.dataDir]).status).toBe(0);

    // second run: the control plane is back
    receiver.accept = true;
    const second = await spawned(env);
    await waitFor(() => receiver.batches.flatMap((b) => b.body.events).some((e) => e.operation === 'grant-approve'));
    const events = receiver.batches.flatMap((b) => b.body.events);
    expect(receiver.batches[0]!.authorization).toBe('Bearer audit-bearer-123');
    expect(receiver.batches[0]!.body.proxy).toMatch(/^kp-[0-9a-f]{16}$/);
    expect(events[0]).toMatchObject({ seq: 1, operation: 'master-key', outcome: 'success', store, org: 'org-1' });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(await second.stop()).toBe(0);
  });

  it('refuses to start on an invalid configuration, naming every bad variable (exit 1)', async () => {
    const r = spawnSync(process.execPath, [path.join(import.meta.dirname, '../bin/arca-key-proxy.ts'), 'serve'], {
      env: {
        PATH: process.env.PATH ?? '', ARCA_KP_LISTEN: 'nope', ARCA_KP_JWKS_FILE: '/x', ARCA_KP_JWKS_URL: 'http://x',
        ARCA_KP_VAULT_TOKEN: 'hvs.plain', ARCA_KP_STRICT: 'maybe', ARCA_KP_CACHE_TTL_SECONDS: '-5',
      },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    for (const name of ['ARCA_KP_LISTEN', 'ARCA_KP_DATA_DIR', 'ARCA_KP_ISSUER', 'ARCA_KP_JWKS_FILE', 'ARCA_KP_VAULT_TOKEN', 'ARCA_KP_STRICT', 'ARCA_KP_CACHE_TTL_SECONDS', 'ARCA_KP_LOCAL_KEK_FILE']) {
      expect(r.stderr).toContain(name);
    }
    expect(r.stderr).not.toContain('hvs.plain');
  });

  it('serves HTTPS when given a certificate', async () => {
    const ws = await workspace();
    const cert = path.join(ws.dir, 'tls.crt');
    const key = path.join(ws.dir, 'tls.key');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const proxy = await spawned(ws.env({ ARCA_KP_TLS_CERT_FILE: cert, ARCA_KP_TLS_KEY_FILE: key }));
    expect(proxy.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const { readFileSync } = await import('node:fs');
    const body = await new Promise<string>((resolve, reject) => {
      httpsRequest(`${proxy.url}/healthz`, { ca: readFileSync(cert) }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
      }).on('error', reject).end();
    });
    expect(JSON.parse(body)).toEqual({ status: 'ok' });
    expect(await proxy.stop()).toBe(0);
  });
});
