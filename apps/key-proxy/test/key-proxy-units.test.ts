import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobKeyDeriver, deriveFileKey, deriveStoreKeys } from '@arca/crypto';
import { describe, expect, it } from 'vitest';
import { AuditStore } from '../src/audit/audit-store.ts';
import { loadKeyProxyConfig } from '../src/config/key-proxy-config.ts';
import { KeyProxyError } from '../src/errors/key-proxy-error.ts';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../src/keys/envelope.ts';
import { MasterKeyCache } from '../src/keys/master-key-cache.ts';
import { StoreKeyMaterial } from '../src/keys/store-key-material.ts';
import { RateLimiter } from '../src/limits/rate-limiter.ts';
import { JsonLogger } from '../src/logging/json-logger.ts';
import { openStateDatabase } from '../src/state/state-database.ts';

const BASE_ENV = { ARCA_KP_DATA_DIR: '/tmp/x', ARCA_KP_ISSUER: 'https://cp', ARCA_KP_JWKS_FILE: '/tmp/jwks.json', ARCA_KP_LOCAL_KEK_FILE: '/tmp/kek' };

function configError(env: Record<string, string>): string {
  try {
    loadKeyProxyConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(KeyProxyError);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const { config } = loadKeyProxyConfig(BASE_ENV);
    expect(config).toMatchObject({
      listen: { host: '127.0.0.1', port: 8700 }, publicUrl: undefined, audience: 'arca-key-proxy', strict: true,
      kek: { provider: 'local', kekFile: '/tmp/kek', previousKekFiles: [] }, cache: { ttlSeconds: 300, maxStores: 1000 },
      rateLimit: { keysPerSecond: 200_000, burst: 200_000 }, tls: undefined, allowPlainHttp: false, logLevel: 'info',
    });
  });

  it('maps every provider\'s variables', () => {
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_PROVIDER: 'vault', ARCA_KP_VAULT_ADDR: 'https://vault:8200', ARCA_KP_VAULT_TOKEN_FILE: '/t', ARCA_KP_VAULT_KEY: 'k', ARCA_KP_VAULT_PREVIOUS_KEYS: 'old1, old2' }).config.kek)
      .toEqual({ provider: 'vault', addr: 'https://vault:8200', tokenFile: '/t', mount: 'transit', key: 'k', previousKeys: ['old1', 'old2'] });
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_PROVIDER: 'aws-kms', ARCA_KP_KMS_KEY_ID: 'alias/arca', AWS_REGION: 'eu-west-3' }).config.kek)
      .toEqual({ provider: 'aws-kms', keyId: 'alias/arca', region: 'eu-west-3' });
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_PROVIDER: 'pkcs11', ARCA_KP_PKCS11_MODULE: '/m.so', ARCA_KP_PKCS11_TOKEN_LABEL: 't', ARCA_KP_PKCS11_PIN_FILE: '/p', ARCA_KP_PKCS11_KEY_LABEL: 'k' }).config.kek)
      .toEqual({ provider: 'pkcs11', module: '/m.so', tokenLabel: 't', pinFile: '/p', keyLabel: 'k' });
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_LOCAL_PREVIOUS_KEK_FILES: '/a,/b' }).config.kek).toMatchObject({ previousKekFiles: ['/a', '/b'] });
  });

  it('lists every bad variable at once', () => {
    const message = configError({ ARCA_KP_PROVIDER: 'vault', ARCA_KP_CACHE_MAX_STORES: '0', ARCA_KP_AUDIT_URL: 'ftp://x', ARCA_KP_TLS_CERT_FILE: '/c' });
    for (const name of ['ARCA_KP_DATA_DIR', 'ARCA_KP_ISSUER', 'ARCA_KP_JWKS_FILE', 'ARCA_KP_VAULT_ADDR', 'ARCA_KP_VAULT_TOKEN_FILE', 'ARCA_KP_VAULT_KEY', 'ARCA_KP_CACHE_MAX_STORES', 'ARCA_KP_AUDIT_URL', 'ARCA_KP_TLS_KEY_FILE']) {
      expect(message).toContain(name);
    }
  });

  it('takes secrets only from files', () => {
    for (const name of ['ARCA_KP_VAULT_TOKEN', 'ARCA_KP_PKCS11_PIN', 'ARCA_KP_AUDIT_TOKEN']) {
      const message = configError({ ...BASE_ENV, [name]: 'the-secret-value' });
      expect(message).toContain(`${name}: secrets are not read from the environment`);
      expect(message).not.toContain('the-secret-value');
    }
  });

  it('refuses plain HTTP on a non-loopback address unless allowed, and wants a public URL on a wildcard address', () => {
    expect(configError({ ...BASE_ENV, ARCA_KP_LISTEN: '10.0.0.5:8700' })).toMatch(/not a loopback address/);
    expect(configError({ ...BASE_ENV, ARCA_KP_LISTEN: '0.0.0.0:8700', ARCA_KP_ALLOW_PLAIN_HTTP: 'true' })).toMatch(/ARCA_KP_PUBLIC_URL: is required/);
    const { config } = loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_LISTEN: '0.0.0.0:8700', ARCA_KP_ALLOW_PLAIN_HTTP: 'true', ARCA_KP_PUBLIC_URL: 'https://kp.example.com/' });
    expect(config.publicUrl).toBe('https://kp.example.com');
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_LISTEN: '[::1]:0' }).config.listen).toEqual({ host: '::1', port: 0 });
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_LISTEN: 'localhost:9000' }).config.listen).toEqual({ host: 'localhost', port: 9000 });
  });

  it('warns about unknown ARCA_KP_ variables (typos)', () => {
    expect(loadKeyProxyConfig({ ...BASE_ENV, ARCA_KP_STRCT: 'false' }).warnings).toEqual([expect.stringContaining('ARCA_KP_STRCT')]);
  });
});

describe('envelope codec', () => {
  const envelope: Envelope = { v: 1, provider: 'local', kek: '0123456789abcdef', org: 'org-1', store: 'ab'.repeat(32), ct: 'Y3Q=' };

  it('round-trips and starts with arca-env1.', () => {
    const text = encodeEnvelope(envelope);
    expect(text).toMatch(/^arca-env1\.[A-Za-z0-9_-]+$/);
    expect(decodeEnvelope(text)).toEqual(envelope);
    expect(JSON.parse(Buffer.from(text.slice(10), 'base64url').toString())).toEqual(envelope);
  });

  it('refuses malformed envelopes without echoing them', () => {
    for (const bad of ['', 'arca-env2.abc', 'arca-env1.!!!', `arca-env1.${Buffer.from('[]').toString('base64url')}`,
      encodeEnvelope({ ...envelope, store: 'XY' }), encodeEnvelope({ ...envelope, v: 2 as 1 }), encodeEnvelope({ ...envelope, provider: 'gcp' as 'local' })]) {
      expect(() => decodeEnvelope(bad)).toThrow(/envelope is malformed/);
    }
  });
});

describe('store key material', () => {
  it('derives exactly what deriveStoreKeys, BlobKeyDeriver and deriveFileKey derive, and zeroes the master key', () => {
    const mk = randomBytes(32);
    const store = randomBytes(32).toString('hex');
    const expected = deriveStoreKeys(mk, Buffer.from(store, 'hex'));
    const copy = Buffer.from(mk);
    const material = StoreKeyMaterial.fromMasterKey(copy, { org: 'o', store });
    expect(copy.equals(Buffer.alloc(32))).toBe(true);
    expect(material.agentKeys()).toEqual({ macKey: expected.macKey.toString('base64url'), chunkerKey: expected.chunkerKey.toString('base64url') });
    const id = randomBytes(32);
    expect(material.blobKeys([id.toString('hex')])).toEqual([new BlobKeyDeriver(expected.dataKey).derive(id).toString('base64url')]);
    const keyId = randomBytes(16);
    expect(material.fileKeys([{ kind: 2, keyId: keyId.toString('hex') }])).toEqual([deriveFileKey(expected.dataKey, 2, keyId).toString('base64url')]);
    material.destroy();
    expect(() => material.agentKeys()).toThrow(/evicted/);
  });
});

describe('master key cache', () => {
  const envelopeFor = (n: number): { text: string; envelope: Envelope } => {
    const envelope: Envelope = { v: 1, provider: 'local', kek: 'k', org: 'o', store: n.toString(16).padStart(64, '0'), ct: `ct${n}` };
    return { text: encodeEnvelope(envelope), envelope };
  };

  it('shares one unwrap between concurrent misses and hits afterwards', async () => {
    let unwraps = 0;
    const cache = new MasterKeyCache({ ttlMs: 60_000, maxEntries: 10, unwrap: async () => (unwraps++, await new Promise((r) => setTimeout(r, 20)), randomBytes(32)) });
    const { text, envelope } = envelopeFor(1);
    const [a, b, c] = await Promise.all([cache.get(text, envelope), cache.get(text, envelope), cache.get(text, envelope)]);
    expect(unwraps).toBe(1);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(await cache.get(text, envelope)).toBe(a);
    expect(unwraps).toBe(1);
    cache.clear();
  });

  it('expires entries after the TTL and evicts the least recently used, wiping them', async () => {
    let now = 0;
    const cache = new MasterKeyCache({ ttlMs: 1000, maxEntries: 2, unwrap: async () => randomBytes(32), now: () => now });
    const e1 = envelopeFor(1);
    const e2 = envelopeFor(2);
    const e3 = envelopeFor(3);
    const m1 = await cache.get(e1.text, e1.envelope);
    const m2 = await cache.get(e2.text, e2.envelope);
    await cache.get(e1.text, e1.envelope); // 1 is now the most recent
    const m3 = await cache.get(e3.text, e3.envelope); // evicts 2
    expect(m2.destroyed).toBe(true);
    expect(m1.destroyed).toBe(false);
    expect(cache.size).toBe(2);
    now = 1500;
    const m1b = await cache.get(e1.text, e1.envelope);
    expect(m1.destroyed).toBe(true);
    expect(m1b).not.toBe(m1);
    cache.clear();
    expect(m1b.destroyed).toBe(true);
    expect(m3.destroyed).toBe(true);
    expect(cache.size).toBe(0);
  });

  it('does not cache a failed unwrap', async () => {
    let fail = true;
    const cache = new MasterKeyCache({ ttlMs: 60_000, maxEntries: 10, unwrap: async () => {
      if (fail) throw new Error('down');
      return randomBytes(32);
    } });
    const { text, envelope } = envelopeFor(1);
    await expect(cache.get(text, envelope)).rejects.toThrow('down');
    fail = false;
    expect((await cache.get(text, envelope)).destroyed).toBe(false);
    cache.clear();
  });
});

describe('rate limiter', () => {
  it('admits up to the burst, refills at the rate, and says when to retry', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 100, burst: 1000, now: () => now });
    expect(limiter.take('a', 1000)).toEqual({ allowed: true });
    expect(limiter.take('a', 50)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take('b', 10)).toEqual({ allowed: true });
    now = 500;
    expect(limiter.take('a', 50)).toEqual({ allowed: true });
    expect(limiter.take('a', 1000)).toEqual({ allowed: false, retryAfterSeconds: 10 });
    // a request above the burst is capped at the burst, so it can pass once the bucket is full
    now = 100_000;
    expect(limiter.take('a', 5000)).toEqual({ allowed: true });
  });
});

describe('audit store', () => {
  it('chains events and detects tampering', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'arca-kp-audit-'));
    try {
      const db = openStateDatabase(path.join(dir, 'data'));
      const store = new AuditStore(db);
      const event = (n: number) => ({
        time: new Date().toISOString(), org: 'o', agent: 'a', store: null, job: `j${n}`, operation: 'keys' as const, purpose: 'read' as const,
        blobKeys: n, fileKeys: 0, outcome: 'success' as const, requestId: `r${n}`, agentKeyThumbprint: null,
      });
      store.append([event(1), event(2)]);
      store.append([event(3)]);
      expect(store.verify()).toMatchObject({ ok: true, events: 3 });
      expect(store.readAfter(1, 10).map((e) => e.seq)).toEqual([2, 3]);
      expect(store.tail(1)[0]).toMatchObject({ seq: 3, job: 'j3', proxy: store.proxyId });
      db.prepare("UPDATE audit_events SET event = replace(event, '\"blobKeys\":2', '\"blobKeys\":0') WHERE seq = 2").run();
      expect(store.verify()).toMatchObject({ ok: false, brokenAt: 2 });
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('logger', () => {
  it('writes JSON lines and drops fields named like secrets', () => {
    const lines: string[] = [];
    const logger = new JsonLogger({ level: 'info', sink: { write: (l: string) => lines.push(l) } });
    logger.debug('hidden');
    logger.info('hello', { requestId: 'r1', token: 'eyJ...', envelope: 'arca-env1.x', macKey: 'k', blobKeys: 3 });
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!);
    expect(record).toMatchObject({ level: 'info', msg: 'hello', requestId: 'r1', blobKeys: 3 });
    expect(record).not.toHaveProperty('token');
    expect(record).not.toHaveProperty('envelope');
    expect(record).not.toHaveProperty('macKey');
  });
});
