/**
 * Test harness for the key proxy: a control-plane signing key and its JWKS file, agent identities,
 * job tokens, a client that signs proofs like the agent does, and two ways to run a proxy — in
 * this process (startKeyProxy, port 0, temp data dir, local KEK) or as a child process through the
 * real `arca-key-proxy serve` (Node 24 = process.execPath inside vitest).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createProof, generateAgentIdentity, issueJobToken, publicJwkOf, type AgentIdentity, type IssueJobTokenInput, type JobOperation,
} from '@arca/crypto';
import { createLocalKekFile } from '../../src/kek/local-kek-provider.ts';
import type { KekProvider } from '../../src/kek/kek-provider.ts';
import { loadKeyProxyConfig } from '../../src/config/key-proxy-config.ts';
import { startKeyProxy, type RunningKeyProxy } from '../../src/key-proxy-app.ts';
import { JsonLogger } from '../../src/logging/json-logger.ts';

export const ISSUER = 'https://control-plane.test';
export const BIN = fileURLToPath(new URL('../../bin/arca-key-proxy.ts', import.meta.url));

export function storeId(): string {
  return randomBytes(32).toString('hex');
}

export interface Issuer {
  privateKey: KeyObject;
  kid: string;
  jwk: Record<string, unknown>;
}

export function newIssuer(kid = 'cp-1'): Issuer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, kid, jwk: { ...publicJwkOf(publicKey), kid, alg: 'EdDSA', use: 'sig' } };
}

/** A temp directory with a JWKS file and a local KEK file, removed by cleanup(). */
export interface Workspace {
  dir: string;
  dataDir: string;
  jwksFile: string;
  kekFile: string;
  issuer: Issuer;
  /** the env a proxy needs (strict off unless overridden) */
  env(overrides?: Record<string, string>): Record<string, string>;
  cleanup(): void;
}

export async function newWorkspace(): Promise<Workspace> {
  const dir = mkdtempSync(path.join(tmpdir(), 'arca-kp-test-'));
  const issuer = newIssuer();
  const jwksFile = path.join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [issuer.jwk] }));
  const kekFile = path.join(dir, 'kek.hex');
  await createLocalKekFile(kekFile);
  const dataDir = path.join(dir, 'data');
  return {
    dir, dataDir, jwksFile, kekFile, issuer,
    env: (overrides = {}) => ({
      ARCA_KP_LISTEN: '127.0.0.1:0',
      ARCA_KP_DATA_DIR: dataDir,
      ARCA_KP_ISSUER: ISSUER,
      ARCA_KP_JWKS_FILE: jwksFile,
      ARCA_KP_STRICT: 'false',
      ARCA_KP_PROVIDER: 'local',
      ARCA_KP_LOCAL_KEK_FILE: kekFile,
      ...overrides,
    }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TestProxy extends RunningKeyProxy {
  logs: string[];
}

/** An in-process proxy configured from `env` through the real config loader. */
export async function startTestProxy(env: Record<string, string>, options: { provider?: KekProvider; readinessCacheMs?: number } = {}): Promise<TestProxy> {
  const { config } = loadKeyProxyConfig(env);
  const logs: string[] = [];
  const logger = new JsonLogger({ level: 'debug', sink: { write: (line: string) => logs.push(line) } });
  const proxy = await startKeyProxy(config, { logger, defaultMetrics: false, ...options });
  return Object.assign(proxy, { logs });
}

export interface TokenOptions extends Partial<IssueJobTokenInput> {
  ops: JobOperation[];
  store: string;
}

export class Agent {
  readonly identity: AgentIdentity;
  readonly name: string;
  readonly org: string;

  constructor(name = 'agent-1', org = 'org-1', identity: AgentIdentity = generateAgentIdentity()) {
    this.name = name;
    this.org = org;
    this.identity = identity;
  }

  get thumbprint(): string {
    return this.identity.thumbprint;
  }

  token(issuer: Issuer, options: TokenOptions): Promise<string> {
    return issueJobToken(
      {
        issuer: ISSUER, org: this.org, agent: this.name, job: `job-${randomBytes(4).toString('hex')}`,
        agentKeyThumbprint: this.identity.thumbprint, lifetimeSeconds: 600, ...options,
      },
      issuer,
    );
  }
}

export interface ProxyResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface CallOptions {
  token?: string;
  /** signs the proof; default: no proof header */
  signer?: AgentIdentity;
  body?: unknown;
  /** raw body instead of JSON.stringify(body) */
  rawBody?: string | Buffer;
  contentType?: string;
  /** the URL the proof names (default: the request URL) */
  proofUrl?: string;
  /** reuse this proof instead of making a fresh one */
  proof?: string;
  method?: string;
}

/** Calls the proxy like the agent does: Authorization: DPoP <token> + a fresh proof over the exact body. */
export async function call<T = Record<string, unknown>>(baseUrl: string, pathname: string, options: CallOptions = {}): Promise<ProxyResponse<T> & { proof?: string }> {
  const method = options.method ?? 'POST';
  const url = baseUrl + pathname;
  const body = options.rawBody ?? (options.body === undefined ? (method === 'GET' ? undefined : '{}') : JSON.stringify(options.body));
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  if (options.token) headers.authorization = `DPoP ${options.token}`;
  let proof = options.proof;
  if (!proof && options.signer && options.token) {
    proof = await createProof(options.signer, { method, url: options.proofUrl ?? url, token: options.token, body: body ?? '' });
  }
  if (proof) headers.dpop = proof;
  const response = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (metrics)
  }
  return { status: response.status, body: parsed as T, headers: response.headers, ...(proof ? { proof } : {}) };
}

/** The usual agent flow helpers. */
export async function initStore(baseUrl: string, issuer: Issuer, agent: Agent, store: string): Promise<string> {
  const token = await agent.token(issuer, { ops: ['init'], store });
  const r = await call<{ envelope: string }>(baseUrl, `/v1/stores/${store}/master-key`, { token, signer: agent.identity, body: {} });
  if (r.status !== 200) throw new Error(`init failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.envelope;
}

/** Runs the real CLI (Node 24) synchronously. */
export function runCli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export interface SpawnedProxy {
  url: string;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM and wait; resolves with the exit code */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `arca-key-proxy serve` as a child process and waits for its "listening" line. */
export function spawnProxy(env: Record<string, string>): Promise<SpawnedProxy> {
  const child = spawn(process.execPath, [BIN, 'serve'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the proxy did not start: ${out}${err}`));
    }, 20_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (!line) return;
      clearTimeout(timer);
      const { url } = JSON.parse(line) as { url: string };
      resolve({
        url,
        child,
        stdout: () => out,
        stderr: () => err,
        stop: async (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the proxy exited (${code}) before listening: ${out}${err}`));
    });
  });
}
