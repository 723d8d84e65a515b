import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../bin/arca.mjs', import.meta.url));

/** Small Argon2id parameters (the minimum the crypto lib accepts) so tests unlock in milliseconds. */
export const FAST_KDF = ['--kdf-memory', '8192', '--kdf-iterations', '1', '--kdf-parallelism', '1'];

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** called with the child right after it started (e.g. to signal it) */
  onSpawn?: (child: ChildProcess) => void;
}

/** The environment of the CLI under test: nothing ARCA_* leaks in from the developer's shell. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'SYSTEMROOT', 'NODE_COMPILE_CACHE']) if (process.env[k]) env[k] = process.env[k]!;
  env.LANG = 'C.UTF-8';
  return env;
}

/** Run the real `arca` executable (bin/arca.mjs) with this Node (vitest runs on Node 24). */
export function runArca(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const env: Record<string, string> = baseEnv();
  for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env,
      cwd: options.cwd ?? os.tmpdir(),
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid } : {}),
      ...(options.gid !== undefined ? { gid: options.gid } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8') });
    });
    // arca may exit without reading all of its input (a usage error): no EPIPE for the test then
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    options.onSpawn?.(child);
  });
}

/** A temp directory (world-traversable, so a test may run arca as another user), removed by `cleanup`. */
export async function tempDir(prefix = 'arca-cli-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  await chmod(dir, 0o755);
  return {
    dir,
    cleanup: async () => {
      await chmodTree(dir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Make everything removable (tests chmod files to 000). */
async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o755).catch(() => undefined);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await chmodTree(p);
    else if (!e.isSymbolicLink()) await chmod(p, 0o644).catch(() => undefined);
  }
}

/** A store in a temp dir, with ARCA_STORE and ARCA_PASSPHRASE set for every run. */
export class TestStore {
  readonly root: string;
  readonly location: string;
  passphrase: string;

  constructor(root: string, passphrase = 'test passphrase 4711') {
    this.root = root;
    this.location = path.join(root, 'store');
    this.passphrase = passphrase;
  }

  env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
    return { ARCA_STORE: this.location, ARCA_PASSPHRASE: this.passphrase, ...extra };
  }

  run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return runArca(args, { ...options, env: this.env(options.env) });
  }

  async init(options: RunOptions = {}): Promise<RunResult> {
    const r = await this.run(['init', ...FAST_KDF], options);
    if (r.code !== 0) throw new Error(`arca init failed (${r.code}): ${r.stderr}`);
    return r;
  }

  /** `arca backup --json ...`: the parsed result. */
  async backup(args: string[], options: RunOptions = {}): Promise<{ id: string; result: RunResult; json: BackupJson }> {
    const result = await this.run(['backup', '--json', ...args], options);
    if (result.code !== 0 && result.code !== 3) throw new Error(`arca backup failed (${result.code}): ${result.stderr}`);
    const json = JSON.parse(result.stdout) as BackupJson;
    return { id: json.id, result, json };
  }
}

export interface BackupJson {
  id: string;
  shortId: string;
  paths: string[];
  tags: string[];
  summary: { filesNew: number; filesChanged: number; filesUnmodified: number; bytesTotal: number } | null;
  warnings: { path: string; message: string }[];
}

/** Parse JSON Lines output. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}
