/**
 * RemoteKeyProvider behaviour the real key proxy cannot be made to show on demand (request
 * counts, 429 with retry-after, a flapping 503, malformed answers). The end-to-end behaviour
 * against the real proxy is in test/e2e/key-proxy-agent.test.ts.
 *
 * The in-test server verifies every proof (so the body bytes the client signs are the bytes it
 * sends, and no proof is reused across retries) and derives keys as the proxy does.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BlobKeyDeriver, deriveFileKey, deriveStoreKeys, generateAgentIdentity, ReplayCache, verifyProof, type AgentIdentity,
} from '@arca/crypto';
import { ArcaErrorCode, isArcaError } from '../src/errors/arca-error.ts';
import { FileKind } from '../src/format/sealed-file.ts';
import { RemoteKeyProvider } from '../src/keys/remote-key-provider.ts';

const STORE = randomBytes(32).toString('hex');
const ENVELOPE = 'arca-env1.test';

interface KeysRequest {
  purpose: 'read' | 'write';
  blobIds: string[];
  files: { kind: number; keyId: string }[];
}

class FakeProxy {
  readonly masterKey = randomBytes(32);
  readonly keys = deriveStoreKeys(this.masterKey, Buffer.from(STORE, 'hex'));
  readonly deriver = new BlobKeyDeriver(this.keys.dataKey);
  readonly token = `eyJhbGciOiJFZERTQSJ9.${Buffer.from(JSON.stringify({ store: STORE, org: 'org1', ops: ['backup'] })).toString('base64url')}.sig`;
  readonly requests: KeysRequest[] = [];
  readonly replay = new ReplayCache({ ttlMs: 120_000 });
  /** return a response to send instead of the normal one */
  intercept: ((path: string, n: number) => { status: number; headers?: Record<string, string>; body: string } | undefined) | undefined;
  delayMs = 0;
  inFlight = 0;
  maxInFlight = 0;
  private count = 0;
  private server: Server | undefined;
  url = '';
  readonly identity: AgentIdentity;

  constructor(identity: AgentIdentity) {
    this.identity = identity;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const send = (status: number, value: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(typeof value === 'string' ? value : JSON.stringify(value));
    };
    const n = ++this.count;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      const auth = req.headers.authorization ?? '';
      expect(auth).toBe(`DPoP ${this.token}`);
      await verifyProof(String(req.headers.dpop), {
        method: req.method!, url: `${this.url}${req.url}`, token: this.token, body, expectedJkt: this.identity.thumbprint, replayCache: this.replay,
      });
      const override = this.intercept?.(req.url!, n);
      if (override) return send(override.status, override.body, override.headers);
      if (req.url === `/v1/stores/${STORE}/agent-keys`) {
        return send(200, { macKey: this.keys.macKey.toString('base64url'), chunkerKey: this.keys.chunkerKey.toString('base64url') });
      }
      const request = JSON.parse(body.toString()) as KeysRequest & { envelope: string };
      expect(request.envelope).toBe(ENVELOPE);
      this.requests.push({ purpose: request.purpose, blobIds: request.blobIds, files: request.files });
      send(200, {
        blobKeys: request.blobIds.map((id) => this.deriver.derive(Buffer.from(id, 'hex')).toString('base64url')),
        fileKeys: request.files.map((f) => deriveFileKey(this.keys.dataKey, f.kind, Buffer.from(f.keyId, 'hex')).toString('base64url')),
      });
    } catch (err) {
      send(401, { error: { code: 'PROOF_INVALID', message: err instanceof Error ? err.message : String(err) } });
    } finally {
      this.inFlight--;
    }
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(options: { maxRequestsInFlight?: number; retryBudgetMs?: number } = {}) {
  const identity = generateAgentIdentity();
  const proxy = new FakeProxy(identity);
  await proxy.start();
  cleanups.push(() => proxy.stop());
  const provider = await RemoteKeyProvider.create({ url: proxy.url, storeId: STORE, envelope: ENVELOPE, token: proxy.token, identity, ...options });
  cleanups.push(() => provider.close());
  return { proxy, provider, identity };
}

const ids = (n: number) => Array.from({ length: n }, () => randomBytes(32));

describe('RemoteKeyProvider', () => {
  it('shares requests (calls in the same tick, writes within lingerMs, a prefetch), splits at 10,000 keys, bounds requests in flight', async () => {
    const { proxy, provider } = await setup({ maxRequestsInFlight: 2 });
    expect(provider.agentKeys.macKey.equals(proxy.keys.macKey)).toBe(true);

    const groups = [ids(3), ids(5), ids(1)];
    const ref = { kind: FileKind.Index, keyId: randomBytes(16) };
    const [a, b, c, f] = await Promise.all([...groups.map((g) => provider.blobKeys(g, 'write')), provider.fileKeys([ref], 'write')]);
    expect(proxy.requests).toHaveLength(1);
    expect(proxy.requests[0]!.blobIds).toHaveLength(9);
    expect(proxy.requests[0]!.files).toHaveLength(1);
    [a, b, c].forEach((keys, g) => keys!.forEach((k, i) => expect(k.equals(proxy.deriver.derive(groups[g]![i]!))).toBe(true)));
    expect(f![0]!.equals(deriveFileKey(proxy.keys.dataKey, ref.kind, ref.keyId))).toBe(true);

    // write keys wait a little (lingerMs) for company; a prefetch is joined by the real call
    proxy.requests.length = 0;
    const later = ids(2);
    const first = provider.blobKeys([later[0]!], 'write');
    await new Promise((r) => setTimeout(r, 5));
    await Promise.all([first, provider.blobKeys([later[1]!], 'write')]);
    const prefetched = ids(3);
    provider.prefetchBlobKeys(prefetched, 'read');
    await provider.blobKeys(prefetched.slice(1), 'read');
    expect(proxy.requests.map((r) => [r.purpose, r.blobIds.length])).toEqual([['write', 2], ['read', 3]]);

    proxy.requests.length = 0;
    proxy.delayMs = 30;
    const many = ids(25_000);
    const keys = await provider.blobKeys([...many, many[0]!], 'read'); // a duplicate is asked for once
    expect(proxy.requests.map((r) => r.blobIds.length).sort((x, y) => x - y)).toEqual([5_000, 10_000, 10_000]);
    expect(proxy.maxInFlight).toBeLessThanOrEqual(2);
    expect(keys).toHaveLength(25_001);
    expect(keys[24_999]!.equals(proxy.deriver.derive(many[24_999]!))).toBe(true);
    expect(keys[25_000]!.equals(keys[0]!)).toBe(true);
  });

  it('caches keys: a write-purpose key serves reads, a read-purpose key never serves a write', async () => {
    const { proxy, provider } = await setup();
    const [x, y] = ids(2);
    await provider.blobKeys([x!], 'read');
    await provider.blobKeys([x!], 'read');
    expect(proxy.requests.map((r) => r.purpose)).toEqual(['read']);
    await provider.blobKeys([x!], 'write'); // the proxy must authorize the write
    expect(proxy.requests.map((r) => r.purpose)).toEqual(['read', 'write']);
    await provider.blobKeys([y!], 'write');
    const [fromCache] = await provider.blobKeys([y!], 'read');
    await provider.blobKeys([x!], 'write');
    expect(proxy.requests.map((r) => r.purpose)).toEqual(['read', 'write', 'write']);
    expect(fromCache!.equals(proxy.deriver.derive(y!))).toBe(true);

    // callers get copies: closing zeroes the provider's keys, not the caller's
    await provider.close();
    expect(fromCache!.equals(proxy.deriver.derive(y!))).toBe(true);
    expect(provider.agentKeys.macKey.every((b) => b === 0)).toBe(true);
    await expect(provider.blobKeys([y!], 'read')).rejects.toThrow(/closed/);
  });

  it('retries 429 after retry-after and 503, each time with a fresh proof', async () => {
    const { proxy, provider } = await setup();
    let keyCalls = 0;
    proxy.intercept = (path) => {
      if (!path.endsWith('/keys')) return undefined;
      keyCalls++;
      if (keyCalls === 1) return { status: 429, headers: { 'retry-after': '1' }, body: JSON.stringify({ error: { code: 'RATE_LIMITED', message: 'slow down' } }) };
      if (keyCalls === 2) return { status: 503, body: JSON.stringify({ error: { code: 'PROVIDER_UNAVAILABLE', message: 'vault is sealed' } }) };
      return undefined;
    };
    const started = Date.now();
    const [id] = ids(1);
    const [key] = await provider.blobKeys([id!], 'write');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(keyCalls).toBe(3);
    expect(key!.equals(proxy.deriver.derive(id!))).toBe(true);
  });

  it('gives up with KEY_PROXY_UNAVAILABLE after the retry budget, and names no secret', async () => {
    const { proxy, provider } = await setup({ retryBudgetMs: 700 });
    await proxy.stop();
    const started = Date.now();
    const err = await provider.blobKeys(ids(1), 'write').catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.KeyProxyUnavailable)).toBe(true);
    expect(Date.now() - started).toBeLessThan(3000);
    const text = `${(err as Error).message} ${(err as { hint?: string }).hint}`;
    expect(text).toMatch(/cannot be reached \(ECONNREFUSED\)/);
    expect(text).not.toContain(proxy.token);
  });

  it('rejects malformed answers (wrong key count) as KEY_PROXY_PROTOCOL', async () => {
    const { proxy, provider } = await setup();
    proxy.intercept = (path) => (path.endsWith('/keys') ? { status: 200, body: JSON.stringify({ blobKeys: [], fileKeys: [] }) } : undefined);
    const err = await provider.blobKeys(ids(2), 'read').catch((e: unknown) => e);
    expect(isArcaError(err, ArcaErrorCode.KeyProxyProtocol)).toBe(true);
  });
});
