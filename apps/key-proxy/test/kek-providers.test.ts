import { chmod, chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsKmsFake, startVaultTransitFake, type AwsKmsFake, type VaultTransitFake } from '@arca/test-fakes';
import { createSoftHsmToken, type SoftHsmToken } from '@arca/test-support';
import { KeyProxyError, type KeyProxyErrorCode } from '../src/errors/key-proxy-error.ts';
import { AwsKmsKekProvider } from '../src/kek/aws-kms-kek-provider.ts';
import type { KekContext, KekProvider, WrappedKey } from '../src/kek/kek-provider.ts';
import { createLocalKekFile, LocalKekProvider, localKekId } from '../src/kek/local-kek-provider.ts';
import { openKekProvider } from '../src/kek/open-kek-provider.ts';
import { generatePkcs11Kek, Pkcs11KekProvider } from '../src/kek/pkcs11-kek-provider.ts';
import { VaultKekProvider } from '../src/kek/vault-kek-provider.ts';

// Fixed inputs keep the tests deterministic; only nonces and generated keys are random.
const STORE_A = '0a'.repeat(32);
const STORE_B = '0b'.repeat(32);
const CONTEXT: KekContext = { org: 'org-1', store: STORE_A };
const OTHER_STORE: KekContext = { org: 'org-1', store: STORE_B };
const OTHER_ORG: KekContext = { org: 'org-2', store: STORE_A };
const MASTER_KEY = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
const MASTER_KEY_B64 = MASTER_KEY.toString('base64');

async function expectError(promise: Promise<unknown>, code: KeyProxyErrorCode, message?: RegExp): Promise<KeyProxyError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(KeyProxyError);
  const error = err as KeyProxyError;
  expect({ code: error.code, message: error.message }).toMatchObject({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  // no key material in errors, ever
  expect(error.message).not.toContain(MASTER_KEY_B64);
  expect(error.message).not.toContain(MASTER_KEY.toString('hex'));
  return error;
}

/** flips one bit in the middle of a base64 ciphertext (after an optional `vault:vN:` prefix) */
function tamper(ct: string): string {
  const prefix = /^vault:v\d+:/.exec(ct)?.[0] ?? '';
  const bytes = Buffer.from(ct.slice(prefix.length), 'base64');
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  return prefix + bytes.toString('base64');
}

/** the contract every provider must meet: round trip, org/store binding, tamper detection */
function describeBinding(getProvider: () => KekProvider): void {
  it('wraps and unwraps a master key', async () => {
    const provider = getProvider();
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    expect(wrapped.ct).not.toContain(MASTER_KEY_B64);
    const unwrapped = await provider.unwrap(wrapped, CONTEXT);
    expect(unwrapped.equals(MASTER_KEY)).toBe(true);
    // a new nonce every time
    expect((await provider.wrap(MASTER_KEY, CONTEXT)).ct).not.toBe(wrapped.ct);
  });

  it("refuses another store's or another org's context (PROVIDER_ERROR)", async () => {
    const provider = getProvider();
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    await expectError(provider.unwrap(wrapped, OTHER_STORE), 'PROVIDER_ERROR');
    await expectError(provider.unwrap(wrapped, OTHER_ORG), 'PROVIDER_ERROR');
    await expectError(provider.rewrap(wrapped, OTHER_STORE), 'PROVIDER_ERROR');
  });

  it('refuses a tampered or malformed ciphertext (PROVIDER_ERROR)', async () => {
    const provider = getProvider();
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    await expectError(provider.unwrap({ ...wrapped, ct: tamper(wrapped.ct) }, CONTEXT), 'PROVIDER_ERROR');
    await expectError(provider.unwrap({ ...wrapped, ct: wrapped.ct.slice(0, 20) }, CONTEXT), 'PROVIDER_ERROR');
    await expectError(provider.unwrap({ ...wrapped, ct: `${wrapped.ct}!` }, CONTEXT), 'PROVIDER_ERROR');
  });

  it('rejects malformed contexts before calling the provider', async () => {
    const provider = getProvider();
    await expectError(provider.wrap(MASTER_KEY, { org: 'org-1', store: 'not-a-store-id' }), 'INVALID_REQUEST');
    await expectError(provider.wrap(MASTER_KEY, { org: 'a\0b', store: STORE_A }), 'INVALID_REQUEST');
    await expectError(provider.wrap(MASTER_KEY, { org: '', store: STORE_A }), 'INVALID_REQUEST');
  });
}

async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('local KEK provider', () => {
  let dir: string;
  let kekFile: string;
  let provider: LocalKekProvider;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'arca-local-kek-'));
    kekFile = path.join(dir, 'kek-1.hex');
    await createLocalKekFile(kekFile);
    provider = await LocalKekProvider.open({ kekFile });
  });
  afterAll(async () => {
    await provider?.close();
    await rm(dir, { recursive: true, force: true });
  });

  describeBinding(() => provider);

  it('creates a 0600 KEK file of 64 hex characters, atomically, and refuses to overwrite it', async () => {
    const info = await stat(kekFile);
    expect(info.mode & 0o777).toBe(0o600);
    const text = await readFile(kekFile, 'utf8');
    expect(text).toMatch(/^[0-9a-f]{64}\n$/);
    expect(localKekId(Buffer.from(text.trim(), 'hex'))).toBe(provider.currentKekId);
    await expectError(createLocalKekFile(kekFile), 'CONFIG_INVALID', /already exists/);
    expect(await readFile(kekFile, 'utf8')).toBe(text);
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('names the KEK by the first 16 hex characters of its SHA-256', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    expect(wrapped.kek).toMatch(/^[0-9a-f]{16}$/);
    expect(wrapped.kek).toBe(provider.currentKekId);
    expect(Buffer.from(wrapped.ct, 'base64')).toHaveLength(12 + 32 + 16);
  });

  it('refuses a KEK file readable by group or others, telling to chmod 600', async () => {
    const loose = path.join(dir, 'loose.hex');
    await writeFile(loose, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      await chmod(loose, mode);
      await expectError(LocalKekProvider.open({ kekFile: loose }), 'CONFIG_INVALID', /chmod 600/);
    }
    await chmod(loose, 0o400);
    await expect(LocalKekProvider.open({ kekFile: loose })).resolves.toBeInstanceOf(LocalKekProvider);
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a KEK file owned by another user', async () => {
    const foreign = path.join(dir, 'foreign.hex');
    await writeFile(foreign, `${'cd'.repeat(32)}\n`, { mode: 0o600 });
    await chown(foreign, 65534, 65534);
    await expectError(LocalKekProvider.open({ kekFile: foreign }), 'CONFIG_INVALID', /owned by uid 65534/);
  });

  it('refuses a KEK file with the wrong content or a missing file', async () => {
    const bad = path.join(dir, 'bad.hex');
    for (const content of ['ab'.repeat(31), `${'ab'.repeat(32)}00`, 'zz'.repeat(32), '']) {
      await writeFile(bad, content, { mode: 0o600 });
      await expectError(LocalKekProvider.open({ kekFile: bad }), 'CONFIG_INVALID', /64 hex characters/);
    }
    await expectError(LocalKekProvider.open({ kekFile: path.join(dir, 'missing.hex') }), 'CONFIG_INVALID', /ENOENT/);
  });

  it('rotates: previous KEK files unwrap, rewrap moves envelopes to the current KEK', async () => {
    const kek2 = path.join(dir, 'kek-2.hex');
    const { kekId: id2 } = await createLocalKekFile(kek2);
    const old = await provider.wrap(MASTER_KEY, CONTEXT);

    const rotated = await LocalKekProvider.open({ kekFile: kek2, previousKekFiles: [kekFile, kek2] });
    const onlyNew = await LocalKekProvider.open({ kekFile: kek2 });
    try {
      expect(rotated.currentKekId).toBe(id2);
      expect((await rotated.unwrap(old, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      const rewrapped = await rotated.rewrap(old, CONTEXT);
      expect(rewrapped.kek).toBe(id2);
      expect(rewrapped.kek).not.toBe(old.kek);
      expect((await rotated.unwrap(rewrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      expect((await onlyNew.unwrap(rewrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      // without the old file the old envelope names a KEK that is not loaded
      await expectError(onlyNew.unwrap(old, CONTEXT), 'PROVIDER_ERROR', /previous KEK files/);
      // the binding survives the rewrap
      await expectError(onlyNew.unwrap(rewrapped, OTHER_STORE), 'PROVIDER_ERROR');
    } finally {
      await rotated.close();
      await onlyNew.close();
    }
  });

  it('is unavailable once closed (KEK wiped)', async () => {
    const closing = await LocalKekProvider.open({ kekFile });
    const wrapped = await closing.wrap(MASTER_KEY, CONTEXT);
    await closing.ready();
    await closing.close();
    await expectError(closing.ready(), 'PROVIDER_UNAVAILABLE');
    await expectError(closing.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE');
  });
});

describe('Vault transit KEK provider (fake Vault)', () => {
  const token = 'hvs.test-token-0123456789';
  const keyName = 'arca-kek';
  let vault: VaultTransitFake;
  let provider: VaultKekProvider;

  const vaultApi = async (method: string, apiPath: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`${vault.url}/v1/${apiPath}`, {
      method,
      headers: { 'x-vault-token': token, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  const makeProvider = (options: Partial<ConstructorParameters<typeof VaultKekProvider>[0]> = {}): VaultKekProvider =>
    new VaultKekProvider({ address: vault.url, token, keyName, requestTimeoutMs: 2000, ...options });

  beforeAll(async () => {
    vault = await startVaultTransitFake({ token });
    expect((await vaultApi('POST', `transit/keys/${keyName}`, { type: 'aes256-gcm96', derived: true })).status).toBe(200);
    provider = makeProvider();
  });
  afterAll(async () => {
    await provider?.close();
    await vault?.close();
  });

  describeBinding(() => provider);

  it('stores the key name and a vault:v1 ciphertext, bound by a derived-key context', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    expect(wrapped.kek).toBe(keyName);
    expect(wrapped.ct).toMatch(/^vault:v1:/);
    // the fake (like Vault) really needs the context: without it, decrypt fails
    const noContext = await vaultApi('POST', `transit/decrypt/${keyName}`, { ciphertext: wrapped.ct });
    expect(noContext.status).toBe(400);
    expect(JSON.stringify(noContext.json)).toContain("missing 'context' for key derivation");
    // and with the documented context (base64 of "<org>/<store>") it is an ordinary transit decrypt
    const direct = await vaultApi('POST', `transit/decrypt/${keyName}`, {
      ciphertext: wrapped.ct,
      context: Buffer.from(`${CONTEXT.org}/${CONTEXT.store}`).toString('base64'),
    });
    expect((direct.json as { data: { plaintext: string } }).data.plaintext).toBe(MASTER_KEY_B64);
  });

  it("reports Vault's refusal text for a wrong context", async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    await expectError(provider.unwrap(wrapped, OTHER_STORE), 'PROVIDER_ERROR', /400: cipher: message authentication failed/);
  });

  it('refuses envelopes naming a key it is not configured for, without asking Vault', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    const before = vault.requestCount;
    await expectError(provider.unwrap({ ...wrapped, kek: 'other-key' }, CONTEXT), 'PROVIDER_ERROR', /not configured/);
    await expectError(provider.unwrap({ ...wrapped, kek: '../../sys/seal' }, CONTEXT), 'PROVIDER_ERROR');
    await expectError(provider.unwrap({ ...wrapped, ct: 'not-vault' }, CONTEXT), 'PROVIDER_ERROR');
    expect(vault.requestCount).toBe(before);
  });

  it('rotates: after a key rotation, rewrap gives vault:v2 and both versions unwrap', async () => {
    const v1 = await provider.wrap(MASTER_KEY, CONTEXT);
    expect((await vaultApi('POST', `transit/keys/${keyName}/rotate`)).status).toBe(200);
    const v2 = await provider.rewrap(v1, CONTEXT);
    expect(v2.kek).toBe(keyName);
    expect(v2.ct).toMatch(/^vault:v2:/);
    expect((await provider.unwrap(v2, CONTEXT)).equals(MASTER_KEY)).toBe(true);
    expect((await provider.unwrap(v1, CONTEXT)).equals(MASTER_KEY)).toBe(true);
    expect((await provider.wrap(MASTER_KEY, CONTEXT)).ct).toMatch(/^vault:v2:/);
    await expectError(provider.unwrap(v2, OTHER_ORG), 'PROVIDER_ERROR');
  });

  it('moves envelopes to a new key name, keeping the old one for unwrap', async () => {
    expect((await vaultApi('POST', 'transit/keys/arca-kek-2', { derived: true })).status).toBe(200);
    const old = await provider.wrap(MASTER_KEY, CONTEXT);
    const moved = makeProvider({ keyName: 'arca-kek-2', previousKeyNames: [keyName] });
    try {
      const rewrapped = await moved.rewrap(old, CONTEXT);
      expect(rewrapped.kek).toBe('arca-kek-2');
      expect((await moved.unwrap(rewrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      expect((await moved.unwrap(old, CONTEXT)).equals(MASTER_KEY)).toBe(true);
    } finally {
      await moved.close();
    }
  });

  it('ready() checks health and that the key exists and is derived', async () => {
    await provider.ready();
    expect((await vaultApi('POST', 'transit/keys/not-derived', { derived: false })).status).toBe(200);
    const notDerived = makeProvider({ keyName: 'not-derived' });
    const missing = makeProvider({ keyName: 'no-such-key' });
    const badToken = makeProvider({ token: 'hvs.wrong' });
    try {
      await expectError(notDerived.ready(), 'PROVIDER_UNAVAILABLE', /not a derived key/);
      await expectError(missing.ready(), 'PROVIDER_UNAVAILABLE', /404/);
      await expectError(badToken.ready(), 'PROVIDER_UNAVAILABLE', /403: permission denied/);
    } finally {
      await Promise.all([notDerived.close(), missing.close(), badToken.close()]);
    }
  });

  it('maps a wrong token to PROVIDER_ERROR and never reveals the token', async () => {
    const badToken = makeProvider({ token: 'hvs.wrong-secret-token' });
    try {
      const err = await expectError(badToken.wrap(MASTER_KEY, CONTEXT), 'PROVIDER_ERROR', /permission denied/);
      expect(err.message).not.toContain('hvs.wrong-secret-token');
      expect(err.cause).toBeUndefined();
    } finally {
      await badToken.close();
    }
  });

  it('maps outages to PROVIDER_UNAVAILABLE: sealed (503), reset connections, timeouts, refused connections', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    const quick = makeProvider({ requestTimeoutMs: 300 });
    const nowhere = new VaultKekProvider({ address: await closedPortUrl(), token, keyName });
    try {
      vault.setUnavailable(true, 'sealed');
      await expectError(provider.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE', /503: Vault is sealed/);
      await expectError(provider.ready(), 'PROVIDER_UNAVAILABLE', /sealed/);
      vault.setUnavailable(true, 'reset');
      await expectError(provider.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE', /cannot reach Vault/);
      vault.setUnavailable(true, 'hang');
      await expectError(quick.wrap(MASTER_KEY, CONTEXT), 'PROVIDER_UNAVAILABLE', /timed out after 300 ms/);
      vault.setUnavailable(false);
      const refused = await expectError(nowhere.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE', /ECONNREFUSED/);
      expect(refused.message).not.toContain(token);
      await expectError(nowhere.ready(), 'PROVIDER_UNAVAILABLE');
      // back to normal
      expect((await provider.unwrap(wrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      await provider.ready();
    } finally {
      vault.setUnavailable(false);
      await Promise.all([quick.close(), nowhere.close()]);
    }
  });

  it('rejects invalid settings with CONFIG_INVALID', () => {
    expect(() => makeProvider({ address: 'vault:8200' })).toThrow(/http/);
    expect(() => makeProvider({ token: '' })).toThrow(KeyProxyError);
    expect(() => makeProvider({ keyName: 'a/b' })).toThrow(/key name/);
    expect(() => makeProvider({ mount: '/transit/' })).toThrow(/mount/);
  });
});

describe('AWS KMS KEK provider (fake KMS)', () => {
  let kms: AwsKmsFake;
  let keyId: string;
  let provider: AwsKmsKekProvider;

  const makeProvider = (options: Partial<ConstructorParameters<typeof AwsKmsKekProvider>[0]> = {}): AwsKmsKekProvider =>
    new AwsKmsKekProvider({
      region: kms.region,
      endpoint: kms.url,
      keyId,
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      maxAttempts: 2,
      requestTimeoutMs: 2000,
      ...options,
    });

  beforeAll(async () => {
    kms = await startAwsKmsFake();
    keyId = kms.createKey('arca KEK');
    provider = makeProvider();
  });
  afterAll(async () => {
    await provider?.close();
    await kms?.close();
  });

  describeBinding(() => provider);

  it('stores the key ARN and a base64 CiphertextBlob', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    expect(wrapped.kek).toBe(kms.keyArn(keyId));
    expect(wrapped.ct).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it('reports InvalidCiphertextException for a wrong encryption context', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    await expectError(provider.unwrap(wrapped, OTHER_ORG), 'PROVIDER_ERROR', /InvalidCiphertextException/);
  });

  it('passes the envelope key to Decrypt: a ciphertext under another key is refused', async () => {
    const otherKey = kms.createKey();
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    await expectError(provider.unwrap({ ...wrapped, kek: kms.keyArn(otherKey) }, CONTEXT), 'PROVIDER_ERROR', /IncorrectKeyException/);
    await expectError(provider.unwrap({ ...wrapped, kek: 'not a key' }, CONTEXT), 'PROVIDER_ERROR');
  });

  it('rotates: ReEncrypt to the same key after rotation, and to a new key', async () => {
    const old = await provider.wrap(MASTER_KEY, CONTEXT);
    kms.rotateKey(keyId);
    const sameKey = await provider.rewrap(old, CONTEXT);
    expect(sameKey.kek).toBe(kms.keyArn(keyId));
    expect(sameKey.ct).not.toBe(old.ct);
    expect((await provider.unwrap(sameKey, CONTEXT)).equals(MASTER_KEY)).toBe(true);
    expect((await provider.unwrap(old, CONTEXT)).equals(MASTER_KEY)).toBe(true);

    const newKeyId = kms.createKey();
    const moved = makeProvider({ keyId: newKeyId });
    try {
      const rewrapped = await moved.rewrap(old, CONTEXT);
      expect(rewrapped.kek).toBe(kms.keyArn(newKeyId));
      expect((await moved.unwrap(rewrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      await expectError(moved.unwrap(rewrapped, OTHER_STORE), 'PROVIDER_ERROR');
    } finally {
      await moved.close();
    }
  });

  it('ready() = DescribeKey: enabled symmetric encryption key', async () => {
    await provider.ready();
    const disabledKey = kms.createKey();
    kms.setKeyEnabled(disabledKey, false);
    const disabled = makeProvider({ keyId: disabledKey });
    const missing = makeProvider({ keyId: '11111111-2222-3333-4444-555555555555' });
    try {
      await expectError(disabled.ready(), 'PROVIDER_UNAVAILABLE', /not enabled/);
      await expectError(disabled.wrap(MASTER_KEY, CONTEXT), 'PROVIDER_ERROR', /DisabledException/);
      await expectError(missing.ready(), 'PROVIDER_UNAVAILABLE', /NotFoundException/);
    } finally {
      await Promise.all([disabled.close(), missing.close()]);
    }
  });

  it('maps outages to PROVIDER_UNAVAILABLE: 500s, reset connections, timeouts, refused connections', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    const quick = makeProvider({ requestTimeoutMs: 300, maxAttempts: 1 });
    const nowhere = makeProvider({ endpoint: await closedPortUrl(), maxAttempts: 1 });
    try {
      kms.setUnavailable(true, 'error');
      await expectError(provider.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE', /KMSInternalException/);
      await expectError(provider.ready(), 'PROVIDER_UNAVAILABLE');
      kms.setUnavailable(true, 'reset');
      await expectError(provider.rewrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE');
      kms.setUnavailable(true, 'hang');
      await expectError(quick.wrap(MASTER_KEY, CONTEXT), 'PROVIDER_UNAVAILABLE', /timed out/);
      kms.setUnavailable(false);
      await expectError(nowhere.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE', /ECONNREFUSED/);
      expect((await provider.unwrap(wrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
    } finally {
      kms.setUnavailable(false);
      await Promise.all([quick.close(), nowhere.close()]);
    }
  });

  it('rejects invalid settings with CONFIG_INVALID', () => {
    expect(() => makeProvider({ region: '' })).toThrow(/region/);
    expect(() => makeProvider({ keyId: '' })).toThrow(/key id/);
    expect(() => makeProvider({ endpoint: 'not a url' })).toThrow(/endpoint/);
  });
});

describe('PKCS#11 KEK provider (real SoftHSM2)', () => {
  let token: SoftHsmToken;
  let provider: Pkcs11KekProvider;
  const makeProvider = (options: Partial<ConstructorParameters<typeof Pkcs11KekProvider>[0]> = {}): Pkcs11KekProvider =>
    new Pkcs11KekProvider({ modulePath: token.modulePath, tokenLabel: token.label, pin: token.pin, keyLabel: 'kek-1', ...options });

  beforeAll(async () => {
    token = await createSoftHsmToken({ label: 'arca-kek-test' });
    // a second token nobody in this process logs in to: PKCS#11 login is per process and token,
    // so a wrong PIN is only noticed on a token not already logged in
    await token.addToken('arca-pin-test');
    // SoftHSM2 reads its configuration when the module is initialized: before the first PKCS#11 call
    process.env.SOFTHSM2_CONF = token.confPath;
    await generatePkcs11Kek({ modulePath: token.modulePath, tokenLabel: token.label, pin: token.pin, keyLabel: 'kek-1' });
    provider = makeProvider({ sessionPoolSize: 2 });
  });
  afterAll(async () => {
    await provider?.close();
    await token?.remove();
  });

  describeBinding(() => provider);

  it('stores the key label and base64(nonce || ciphertext || tag)', async () => {
    const wrapped = await provider.wrap(MASTER_KEY, CONTEXT);
    expect(wrapped.kek).toBe('kek-1');
    expect(Buffer.from(wrapped.ct, 'base64')).toHaveLength(12 + 32 + 16);
  });

  it('ready() logs in and finds a suitable key', async () => {
    await provider.ready();
    const missingKey = makeProvider({ keyLabel: 'no-such-key' });
    const wrongPin = makeProvider({ tokenLabel: 'arca-pin-test', pin: '000000' });
    const wrongToken = makeProvider({ tokenLabel: 'no-such-token' });
    const noModule = makeProvider({ modulePath: '/nonexistent/libpkcs11.so' });
    try {
      await expectError(missingKey.ready(), 'PROVIDER_UNAVAILABLE', /no AES key labelled "no-such-key"/);
      await expectError(wrongPin.ready(), 'PROVIDER_UNAVAILABLE', /CKR_PIN_INCORRECT/);
      // the PIN failure is remembered, not retried against the token
      await expectError(wrongPin.wrap(MASTER_KEY, CONTEXT), 'PROVIDER_UNAVAILABLE', /not retrying/);
      await expectError(wrongToken.ready(), 'PROVIDER_UNAVAILABLE', /no PKCS#11 token labelled/);
      await expectError(noModule.ready(), 'PROVIDER_UNAVAILABLE', /cannot load PKCS#11 module/);
    } finally {
      await Promise.all([missingKey.close(), wrongPin.close(), wrongToken.close(), noModule.close()]);
    }
    // the other providers sharing the module did not disturb this one
    expect((await provider.unwrap(await provider.wrap(MASTER_KEY, CONTEXT), CONTEXT)).equals(MASTER_KEY)).toBe(true);
  });

  it('refuses an extractable or non-sensitive key', async () => {
    await token.createAesKey('extractable', { extractable: true, sensitive: true });
    await token.createAesKey('not-sensitive', { extractable: false, sensitive: false });
    const extractable = makeProvider({ keyLabel: 'extractable' });
    const notSensitive = makeProvider({ keyLabel: 'not-sensitive' });
    try {
      await expectError(extractable.ready(), 'PROVIDER_UNAVAILABLE', /unsuitable as a KEK \(extractable\)/);
      await expectError(extractable.wrap(MASTER_KEY, CONTEXT), 'PROVIDER_ERROR', /unsuitable as a KEK/);
      await expectError(notSensitive.ready(), 'PROVIDER_UNAVAILABLE', /unsuitable as a KEK \(not sensitive\)/);
    } finally {
      await Promise.all([extractable.close(), notSensitive.close()]);
    }
  });

  it('generatePkcs11Kek refuses an existing label', async () => {
    await expectError(
      generatePkcs11Kek({ modulePath: token.modulePath, tokenLabel: token.label, pin: token.pin, keyLabel: 'kek-1' }),
      'CONFIG_INVALID',
      /already exists/,
    );
  });

  it('rotates to a new key label: rewrap = unwrap + wrap under the current label', async () => {
    const old = await provider.wrap(MASTER_KEY, CONTEXT);
    await generatePkcs11Kek({ modulePath: token.modulePath, tokenLabel: token.label, pin: token.pin, keyLabel: 'kek-2' });
    const rotated = makeProvider({ keyLabel: 'kek-2' });
    try {
      await rotated.ready();
      const rewrapped = await rotated.rewrap(old, CONTEXT);
      expect(rewrapped.kek).toBe('kek-2');
      expect((await rotated.unwrap(rewrapped, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      expect((await rotated.unwrap(old, CONTEXT)).equals(MASTER_KEY)).toBe(true);
      // kek-1's key cannot open kek-2's envelope: relabeling the envelope does not help
      await expectError(provider.unwrap({ ...rewrapped, kek: 'kek-1' }, CONTEXT), 'PROVIDER_ERROR');
      await expectError(rotated.unwrap(rewrapped, OTHER_ORG), 'PROVIDER_ERROR');
    } finally {
      await rotated.close();
    }
  });

  it('serves concurrent calls through its session pool', async () => {
    const contexts = Array.from({ length: 40 }, (_, i): KekContext => ({ org: `org-${i % 3}`, store: i.toString(16).padStart(64, '0') }));
    const wrapped: WrappedKey[] = await Promise.all(contexts.map((context) => provider.wrap(MASTER_KEY, context)));
    const unwrapped = await Promise.all(wrapped.map((w, i) => provider.unwrap(w, contexts[i]!)));
    expect(unwrapped.every((key) => key.equals(MASTER_KEY))).toBe(true);
  });

  it('is unavailable once closed', async () => {
    const closing = makeProvider();
    const wrapped = await closing.wrap(MASTER_KEY, CONTEXT);
    await closing.close();
    await expectError(closing.unwrap(wrapped, CONTEXT), 'PROVIDER_UNAVAILABLE', /closed/);
    await expectError(closing.ready(), 'PROVIDER_UNAVAILABLE');
  });

  it('openKekProvider reads the PIN from a 0600 file, and refuses a readable one', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-pin-'));
    try {
      const pinFile = path.join(dir, 'pin');
      await writeFile(pinFile, `${token.pin}\n`, { mode: 0o600 });
      const settings = { provider: 'pkcs11', modulePath: token.modulePath, tokenLabel: token.label, keyLabel: 'kek-1' } as const;
      const opened = await openKekProvider({ ...settings, pinFile });
      try {
        await opened.ready();
        expect(opened.name).toBe('pkcs11');
      } finally {
        await opened.close();
      }
      await chmod(pinFile, 0o644);
      await expectError(openKekProvider({ ...settings, pinFile }), 'CONFIG_INVALID', /chmod 600/);
      await expectError(openKekProvider({ ...settings, pinFile, pin: token.pin }), 'CONFIG_INVALID', /exactly one/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('openKekProvider', () => {
  it('opens each provider from its settings', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-open-kek-'));
    try {
      const kekFile = path.join(dir, 'kek');
      await createLocalKekFile(kekFile);
      const local = await openKekProvider({ provider: 'local', kekFile, previousKekFiles: [] });
      const vault = await openKekProvider({ provider: 'vault', address: 'https://vault.example:8200', token: 't', keyName: 'k' });
      const kms = await openKekProvider({ provider: 'aws-kms', region: 'eu-west-1', keyId: 'alias/arca', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
      expect([local.name, vault.name, kms.name]).toEqual(['local', 'vault', 'aws-kms']);
      await Promise.all([local.close(), vault.close(), kms.close()]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects unknown providers and bad settings with CONFIG_INVALID', async () => {
    await expectError(openKekProvider({ provider: 'gcp-kms' } as never), 'CONFIG_INVALID', /unknown KEK provider/);
    await expectError(openKekProvider({ provider: 'vault', address: 'ftp://x', token: 't', keyName: 'k' }), 'CONFIG_INVALID');
    await expectError(openKekProvider({ provider: 'local', kekFile: '/nonexistent/kek' }), 'CONFIG_INVALID');
  });
});
