/**
 * A real `arca-key-proxy serve` (local KEK provider, JWKS file) and job tokens issued the way the
 * control plane issues them, for the agent daemon's tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForListeningUrl } from '@arca/test-support';
import { issueJobToken, type AgentIdentity, type JobOperation } from '@arca/crypto';

const KEY_PROXY = fileURLToPath(new URL('../../key-proxy/bin/arca-key-proxy.ts', import.meta.url));
export const ISSUER = 'https://control-plane.test';
export const ORG = randomUUID();

function env(extra: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { LANG: 'C.UTF-8' };
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'NODE_COMPILE_CACHE']) if (process.env[k]) out[k] = process.env[k]!;
  return { ...out, ...extra };
}

function runKeyProxy(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KEY_PROXY, ...args], { env: env({}), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

export class TestKeyProxy {
  readonly url: string;
  private readonly child: ChildProcess;
  private readonly issuerKey: { privateKey: KeyObject; kid: string };

  private constructor(child: ChildProcess, url: string, issuerKey: { privateKey: KeyObject; kid: string }) {
    this.child = child;
    this.url = url;
    this.issuerKey = issuerKey;
  }

  /** Start a key proxy whose data, KEK and JWKS live in `dir`. */
  static async start(dir: string): Promise<TestKeyProxy> {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const issuerKey = { privateKey, kid: 'cp-key-1' };
    const jwksFile = path.join(dir, 'jwks.json');
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: issuerKey.kid, alg: 'EdDSA', use: 'sig' }] }));
    const kekFile = path.join(dir, 'kek');
    const kek = await runKeyProxy(['kek', 'create-local', '--out', kekFile]);
    if (kek.code !== 0) throw new Error(`arca-key-proxy kek create-local failed: ${kek.stderr}`);
    const child = spawn(process.execPath, [KEY_PROXY, 'serve'], {
      env: env({
        ARCA_KP_LISTEN: '127.0.0.1:0',
        ARCA_KP_DATA_DIR: path.join(dir, 'kp-data'),
        ARCA_KP_ISSUER: ISSUER,
        ARCA_KP_JWKS_FILE: jwksFile,
        ARCA_KP_STRICT: 'false',
        ARCA_KP_PROVIDER: 'local',
        ARCA_KP_LOCAL_KEK_FILE: kekFile,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await waitForListeningUrl(child, 'the key proxy');
    return new TestKeyProxy(child, url, issuerKey);
  }

  /** A job token as the control plane issues it: for `store`, bound to the agent's key. */
  token(store: string, ops: readonly JobOperation[], identity: AgentIdentity, options: { job?: string; lifetimeSeconds?: number } = {}): Promise<string> {
    return issueJobToken(
      {
        issuer: ISSUER,
        org: ORG,
        agent: 'agent-test',
        store,
        job: options.job ?? randomUUID(),
        ops: [...ops],
        agentKeyThumbprint: identity.thumbprint,
        lifetimeSeconds: options.lifetimeSeconds ?? 600,
      },
      this.issuerKey,
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }
}

export function newStoreId(): string {
  return randomBytes(32).toString('hex');
}

/** Path → SHA-256 of every regular file (and 'dir' for directories) under `dir`. */
export async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const rel = path.relative(dir, p);
    if (e.isFile()) out[rel] = createHash('sha256').update(await readFile(p)).digest('hex');
    else if (e.isDirectory()) out[rel] = 'dir';
  }
  return out;
}
