/**
 * The agent and the key proxy together, as separate processes talking real HTTP: the real
 * `arca-key-proxy serve` (local KEK provider) and the real `arca` CLI, with job tokens issued here
 * the way the control plane issues them (issueJobToken, an Ed25519 issuer key and its JWKS file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForListeningUrl } from '@arca/test-support';
import { issueJobToken, type JobOperation } from '@arca/crypto';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARCA = path.join(ROOT, 'apps/agent/bin/arca.mjs');
const KEY_PROXY = path.join(ROOT, 'apps/key-proxy/bin/arca-key-proxy.ts');
const ISSUER = 'https://control-plane.test';
const ORG = 'org-e2e';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { LANG: 'C.UTF-8' };
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'NODE_COMPILE_CACHE']) if (process.env[k]) env[k] = process.env[k]!;
  return env;
}

function run(script: string, args: string[], env: Record<string, string | undefined> = {}, onSpawn?: (child: ChildProcess) => void): Promise<Run> {
  const fullEnv = baseEnv();
  for (const [k, v] of Object.entries(env)) if (v !== undefined) fullEnv[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    onSpawn?.(child);
  });
}

/** A running `arca-key-proxy serve`. */
class KeyProxy {
  readonly child: ChildProcess;
  readonly url: string;
  private constructor(child: ChildProcess, url: string) {
    this.child = child;
    this.url = url;
  }

  static async start(env: Record<string, string>): Promise<KeyProxy> {
    const child = spawn(process.execPath, [KEY_PROXY, 'serve'], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await waitForListeningUrl(child, 'the key proxy');
    return new KeyProxy(child, url);
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    await exited;
  }
}

async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const rel = path.relative(dir, p);
    if (e.isSymbolicLink()) out[rel] = `-> ${(await readFile(p).catch(() => Buffer.alloc(0))).length}`;
    else if (e.isFile()) out[rel] = createHash('sha256').update(await readFile(p)).digest('hex');
    else if (e.isDirectory()) out[rel] = 'dir';
  }
  return out;
}

/** Every object of a store with its size: to show a failed command changed nothing. */
async function storeListing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.push(`${path.relative(dir, path.join(e.parentPath, e.name))} ${(await stat(path.join(e.parentPath, e.name))).size}`);
  }
  return out.sort();
}

describe('arca with a managed store through the real key proxy', () => {
  let tmp: string;
  let issuerKey: { privateKey: KeyObject; kid: string };
  let proxyEnv: Record<string, string>;
  let proxy: KeyProxy;
  const extraProxies: KeyProxy[] = [];
  let agentKey: string;
  let thumbprint: string;
  const storeId = randomBytes(32).toString('hex');
  let store: string;
  let src: string;
  let firstSnapshot: string;

  const token = (ops: JobOperation[], options: { store?: string; thumbprint?: string; now?: number; lifetime?: number } = {}) =>
    issueJobToken(
      {
        issuer: ISSUER,
        org: ORG,
        agent: 'agent-1',
        store: options.store ?? storeId,
        job: `job-${randomBytes(4).toString('hex')}`,
        ops,
        agentKeyThumbprint: options.thumbprint ?? thumbprint,
        lifetimeSeconds: options.lifetime ?? 600,
        ...(options.now !== undefined ? { now: options.now } : {}),
      },
      issuerKey,
    );

  /** Run arca on the managed store with a token for `ops` (or the given token). */
  const arca = async (args: string[], auth: { ops?: JobOperation[]; token?: string; env?: Record<string, string | undefined> } = {}, onSpawn?: (c: ChildProcess) => void) =>
    run(
      ARCA,
      args,
      {
        ARCA_STORE: store,
        ARCA_KEY_PROXY_URL: proxy.url,
        ARCA_AGENT_KEY_FILE: agentKey,
        ARCA_KEY_PROXY_TOKEN: auth.token ?? (await token(auth.ops ?? ['backup'])),
        ARCA_KEY_PROXY_RETRY_SECONDS: '2',
        ...auth.env,
      },
      onSpawn,
    );

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'arca-e2e-kp-'));
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    issuerKey = { privateKey, kid: 'cp-key-1' };
    const jwksFile = path.join(tmp, 'jwks.json');
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'cp-key-1', alg: 'EdDSA', use: 'sig' }] }));
    const kekFile = path.join(tmp, 'kek');
    const kek = await run(KEY_PROXY, ['kek', 'create-local', '--out', kekFile]);
    expect(kek.code, kek.stderr).toBe(0);
    proxyEnv = {
      ARCA_KP_LISTEN: '127.0.0.1:0',
      ARCA_KP_DATA_DIR: path.join(tmp, 'kp-data'),
      ARCA_KP_ISSUER: ISSUER,
      ARCA_KP_JWKS_FILE: jwksFile,
      ARCA_KP_STRICT: 'false',
      ARCA_KP_PROVIDER: 'local',
      ARCA_KP_LOCAL_KEK_FILE: kekFile,
    };
    proxy = await KeyProxy.start(proxyEnv);
    store = path.join(tmp, 'store');
    src = path.join(tmp, 'src');
    await mkdir(path.join(src, 'sub/deeper'), { recursive: true });
    await writeFile(path.join(src, 'hello.txt'), 'hello, managed world\n');
    await writeFile(path.join(src, 'sub/random.bin'), randomBytes(300_000));
    await writeFile(path.join(src, 'sub/deeper/repeat.txt'), 'the same line again\n'.repeat(20_000));
    await writeFile(path.join(src, 'empty'), '');
    await symlink('hello.txt', path.join(src, 'link'));
  });

  afterAll(async () => {
    await proxy?.stop('SIGKILL');
    for (const p of extraProxies) await p.stop('SIGKILL');
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('agent keygen writes a private key (0600) and prints its thumbprint; show-key agrees; no overwrite', async () => {
    agentKey = path.join(tmp, 'agent.pem');
    const r = await run(ARCA, ['agent', 'keygen', '--out', agentKey, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const created = JSON.parse(r.stdout) as { thumbprint: string; publicJwk: { kty: string; crv: string } };
    thumbprint = created.thumbprint;
    expect(thumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.publicJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    expect((await stat(agentKey)).mode & 0o777).toBe(0o600);
    expect(await readFile(agentKey, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);

    const shown = await run(ARCA, ['agent', 'show-key', '--agent-key', agentKey]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`thumbprint: ${thumbprint}`);

    const again = await run(ARCA, ['agent', 'keygen', '--out', agentKey]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
  });

  it('init --key-proxy creates the store the init token names, with only an envelope in its config', async () => {
    const initToken = await token(['init']);
    const tokenFile = path.join(tmp, 'init.token');
    await writeFile(tokenFile, `${initToken}\n`, { mode: 0o600 });
    const r = await run(ARCA, ['init', '--store', store, '--key-proxy', proxy.url, '--key-proxy-token-file', tokenFile, '--agent-key', agentKey, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ storeId, keyCustody: 'key-proxy', keyProxy: proxy.url, agentKeyThumbprint: thumbprint });
    const config = JSON.parse(await readFile(path.join(store, 'config'), 'utf8')) as { id: string; keyCustody: { type: string; url: string; envelope: string }; mac: string };
    expect(config.id).toBe(storeId);
    expect(config.keyCustody).toMatchObject({ type: 'key-proxy', url: proxy.url });
    expect(config.keyCustody.envelope).toMatch(/^arca-env1\./);
    expect(await readdir(store)).not.toContain('keys'); // no key slots: nothing to guess a passphrase against
    const envelope = JSON.parse(Buffer.from(config.keyCustody.envelope.slice('arca-env1.'.length), 'base64url').toString()) as Record<string, unknown>;
    expect(envelope).toMatchObject({ v: 1, provider: 'local', org: ORG, store: storeId });

    // the token's secret never shows up in output
    expect(r.stdout + r.stderr).not.toContain(initToken.split('.')[2]);
  });

  it('backup (backup token), snapshots, restore byte-identical (restore token), check --read-data (check token)', async () => {
    const b = await arca(['backup', src, '--json', '--tag', 'managed'], { ops: ['backup'] });
    expect(b.code, b.stderr).toBe(0);
    firstSnapshot = (JSON.parse(b.stdout) as { id: string }).id;

    const s = await arca(['snapshots', '--json'], { ops: ['restore'] });
    expect(s.code, s.stderr).toBe(0);
    expect((JSON.parse(s.stdout) as { id: string; tags: string[] }[]).map((x) => [x.id, x.tags])).toEqual([[firstSnapshot, ['managed']]]);

    const target = path.join(tmp, 'restored');
    const r = await arca(['restore', `${firstSnapshot}:${src}`, '--target', target], { ops: ['restore'] });
    expect(r.code, r.stderr).toBe(0);
    expect(await treeHashes(target)).toEqual(await treeHashes(src));

    const c = await arca(['check', '--read-data'], { ops: ['check'] });
    expect(c.code, c.stderr + c.stdout).toBe(0);
  });

  it('a restore token cannot back up: refused with the reason, exit 1, store unchanged', async () => {
    const before = await storeListing(store);
    await writeFile(path.join(src, 'new-file.txt'), 'not yet backed up\n');
    const r = await arca(['backup', src], { ops: ['restore'] });
    await rm(path.join(src, 'new-file.txt'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/arca: error: the key proxy refused write keys .*\(OPERATION_NOT_ALLOWED/);
    expect(r.stderr).toMatch(/hint: the job token allows only: restore; ask the control plane for a token for this operation/);
    expect(await storeListing(store)).toEqual(before);
  });

  it('an expired token is refused with "get a new job token"', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await token(['backup', 'restore'], { now: now - 3600, lifetime: 600 });
    const r = await arca(['snapshots'], { token: expired });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TOKEN_EXPIRED/);
    expect(r.stderr).toMatch(/hint: the job token has expired: get a new job token from the control plane/);
  });

  it('a stolen copy of the store plus the agent\'s own key and token is useless once the token has expired', async () => {
    const copy = path.join(tmp, 'stolen-copy');
    await cp(store, copy, { recursive: true });
    const now = Math.floor(Date.now() / 1000);
    // the token the agent had for this job: valid then, expired now
    const stale = await token(['restore'], { now: now - 7200, lifetime: 3600 });
    const target = path.join(tmp, 'thief-restore');
    const r = await arca(['restore', 'latest', '--target', target, '--store', copy], { token: stale });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TOKEN_EXPIRED/);
    expect(await readdir(target).catch(() => [])).toEqual([]);
    // the copy itself is complete: what is missing is only a live token
    const ok = await arca(['snapshots', '-q', '--store', copy], { ops: ['restore'] });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('the control plane\'s token alone, without the agent\'s private key, gets nothing', async () => {
    const valid = await token(['backup', 'restore']);
    // another agent key (e.g. the control plane's own, or a thief's) with the real agent's token
    const otherKey = path.join(tmp, 'other.pem');
    expect((await run(ARCA, ['agent', 'keygen', '--out', otherKey, '-q'])).code).toBe(0);
    const r = await arca(['snapshots'], { token: valid, env: { ARCA_AGENT_KEY_FILE: otherKey } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PROOF_INVALID/);
    expect(r.stderr).toContain(`the token is bound to ${thumbprint}`);

    // and straight at the API: the token without any proof
    const config = JSON.parse(await readFile(path.join(store, 'config'), 'utf8')) as { keyCustody: { envelope: string } };
    const res = await fetch(`${proxy.url}/v1/stores/${storeId}/agent-keys`, {
      method: 'POST',
      headers: { authorization: `DPoP ${valid}`, 'content-type': 'application/json' },
      body: JSON.stringify({ envelope: config.keyCustody.envelope }),
    });
    expect(res.status).toBe(401);
    expect(await res.text()).not.toMatch(/macKey/);
  });

  it('takes the key proxy URL from the agent, not from the (unauthenticated) config', async () => {
    // no URL configured: refused, showing the one the config names
    const none = await arca(['snapshots'], { ops: ['restore'], env: { ARCA_KEY_PROXY_URL: undefined } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`this store is managed by the key proxy at ${proxy.url}, and no key proxy is configured for this agent`);

    // a config whose url was rewritten: the environment's URL disagrees → refused
    const copy = path.join(tmp, 'tampered');
    await cp(store, copy, { recursive: true });
    const configFile = path.join(copy, 'config');
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { keyCustody: { url: string } };
    config.keyCustody.url = 'https://evil.example';
    await writeFile(configFile, JSON.stringify(config, null, 2));
    const mismatch = await arca(['snapshots', '--store', copy], { ops: ['restore'] });
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/config names the key proxy https:\/\/evil\.example, but ARCA_KEY_PROXY_URL is/);
    // --key-proxy overrides explicitly, and the config MAC (checked with the real proxy's K_mac) catches the rewrite
    const explicit = await arca(['snapshots', '--store', copy, '--key-proxy', proxy.url], { ops: ['restore'], env: { ARCA_KEY_PROXY_URL: undefined } });
    expect(explicit.code).toBe(1);
    expect(explicit.stderr).toMatch(/using http:\/\/127\.0\.0\.1:\d+ as given by --key-proxy/);
    expect(explicit.stderr).toMatch(/does not match its MAC/);
  });

  it('passphrase options on a managed store, key-proxy options on a passphrase store, and `arca key` are refused clearly', async () => {
    const passFile = path.join(tmp, 'pass');
    await writeFile(passFile, 'a passphrase that does not apply\n', { mode: 0o600 });
    const withPass = await arca(['snapshots', '--passphrase-file', passFile], { ops: ['restore'] });
    expect(withPass.code).toBe(1);
    expect(withPass.stderr).toMatch(/managed by a key proxy: it has no passphrase/);
    const keyList = await arca(['key', 'list'], { ops: ['restore'] });
    expect(keyList.code).toBe(1);
    expect(keyList.stderr).toMatch(/managed by a key proxy: it has no passphrases or key slots/);
    const initBoth = await arca(['init', '--store', path.join(tmp, 'x'), '--key-proxy', proxy.url, '--kdf-memory', '8192'], { ops: ['init'] });
    expect(initBoth.code).toBe(2);

    const plain = path.join(tmp, 'plain-store');
    const env = { ARCA_STORE: plain, ARCA_PASSPHRASE: 'plain passphrase 1234' };
    const init = await run(ARCA, ['init', '--kdf-memory', '8192', '--kdf-iterations', '1', '--kdf-parallelism', '1', '-q'], env);
    expect(init.code, init.stderr).toBe(0);
    const wrong = await run(ARCA, ['snapshots', '--agent-key', agentKey], env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/opened with a passphrase, not through a key proxy: --agent-key does not apply/);
  });

  it('strict mode: an agent without a grant is refused with the approve command; once approved, it works', async () => {
    const strictProxy = await KeyProxy.start({ ...proxyEnv, ARCA_KP_STRICT: 'true', ARCA_KP_DATA_DIR: path.join(tmp, 'kp-strict') });
    extraProxies.push(strictProxy);
    const strictStoreId = randomBytes(32).toString('hex');
    const strictStore = path.join(tmp, 'strict-store');
    const env = { ARCA_STORE: strictStore, ARCA_KEY_PROXY_URL: strictProxy.url, ARCA_AGENT_KEY_FILE: agentKey, ARCA_KEY_PROXY_RETRY_SECONDS: '2' };
    const initToken = await token(['init', 'backup'], { store: strictStoreId });

    const refused = await run(ARCA, ['init'], { ...env, ARCA_KEY_PROXY_TOKEN: initToken });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/GRANT_REQUIRED/);
    const approve = `arca-key-proxy grant approve --org ${ORG} --store ${strictStoreId} --agent-key-thumbprint ${thumbprint}`;
    expect(refused.stderr).toContain(approve);
    await expect(readdir(strictStore).catch(() => [])).resolves.not.toContain('config');

    const granted = await run(KEY_PROXY, ['grant', 'approve', '--org', ORG, '--store', strictStoreId, '--agent-key-thumbprint', thumbprint], {
      ARCA_KP_DATA_DIR: path.join(tmp, 'kp-strict'),
    });
    expect(granted.code, granted.stderr).toBe(0);

    const init = await run(ARCA, ['init', '-q'], { ...env, ARCA_KEY_PROXY_TOKEN: initToken });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout.trim()).toBe(strictStoreId);
    const backup = await run(ARCA, ['backup', src, '-q'], { ...env, ARCA_KEY_PROXY_TOKEN: await token(['backup'], { store: strictStoreId }) });
    expect(backup.code, backup.stderr).toBe(0);
    await strictProxy.stop();
  });

  it('key proxy killed mid-backup: KEY_PROXY_UNAVAILABLE; after a restart the store checks clean and the earlier snapshot restores', async () => {
    const big = path.join(tmp, 'big');
    await mkdir(big);
    for (let i = 0; i < 48; i++) await writeFile(path.join(big, `f${i}.bin`), randomBytes(1_250_000));

    // SIGKILL the proxy as soon as the backup has taken its lock (it has its agent keys then, and
    // has yet to ask for the keys of the index and of every new blob)
    const locks = path.join(store, 'locks');
    await mkdir(locks, { recursive: true });
    const watcher = watch(locks);
    let killed = false;
    watcher.on('change', () => {
      if (killed) return;
      killed = true;
      watcher.close();
      proxy.child.kill('SIGKILL');
    });
    const r = await arca(['backup', big], { ops: ['backup'] });
    watcher.close();
    expect(killed).toBe(true);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/arca: error: the key proxy at http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONN(REFUSED|RESET)\), retried for 2 s/);
    expect(r.stderr).toMatch(/hint: check that the key proxy is running/);
    const json = await arca(['snapshots', '--json'], { ops: ['restore'] });
    expect(json.code).toBe(1);
    expect(json.stdout).toContain('"code":"KEY_PROXY_UNAVAILABLE"');

    // same data dir, same KEK, same address
    await proxy.stop('SIGKILL');
    proxy = await KeyProxy.start({ ...proxyEnv, ARCA_KP_LISTEN: `127.0.0.1:${proxy.port}` });
    const c = await arca(['check', '--read-data'], { ops: ['check'] });
    expect(c.code, c.stderr + c.stdout).toBe(0);
    const target = path.join(tmp, 'restored-after-crash');
    const restored = await arca(['restore', `${firstSnapshot}:${src}`, '--target', target], { ops: ['restore'] });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await treeHashes(target)).toEqual(await treeHashes(src));
  });
});
