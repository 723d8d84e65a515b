import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

/** The environment a spawned service gets: nothing of the test process's but what Node needs. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { LANG: 'C.UTF-8' };
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'NODE_COMPILE_CACHE']) if (process.env[k]) env[k] = process.env[k]!;
  return env;
}

/**
 * A child process of ours (control plane, key proxy, agent) with its output kept for failure
 * messages. `ready` resolves with the first match of `readyPattern` (group 1) in its stdout.
 */
export class ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  output = '';
  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    const keep = (d: Buffer): void => {
      this.output += d.toString();
      if (this.output.length > 512 * 1024) this.output = this.output.slice(-256 * 1024);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  static spawn(name: string, args: string[], env: Record<string, string>): ServiceProcess {
    return new ServiceProcess(name, spawn(process.execPath, args, { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for `pattern` in the output (group 1, or the whole match); fails if the process exits first. */
  async waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = pattern.exec(this.output);
      if (m != null) return m[1] ?? m[0];
      if (!this.running) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}:\n${this.output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms:\n${this.output.slice(-4000)}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    await exited;
  }
}

/** Polls `probe` until it returns something other than undefined/false. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last != null ? `: ${String(last)}` : ''}`);
}

/** A GraphQL call with an API token; throws on transport errors, returns data and errors. */
export async function graphql<T = Record<string, unknown>>(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<{ data?: T; errors?: { message: string; extensions?: { code?: string } }[] }> {
  const response = await fetch(new URL('/graphql', url), {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
}

/** Like graphql(), but throws when the answer has errors. */
export async function graphqlOk<T = Record<string, unknown>>(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const answer = await graphql<T>(url, token, query, variables);
  if (answer.errors != null || answer.data == null) throw new Error(`GraphQL errors: ${JSON.stringify(answer.errors)}`);
  return answer.data;
}

export interface FinishedRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a Node script of ours to its end (CLI commands: enroll, bootstrap, kek create-local). */
export function runToEnd(script: string, args: string[], env: Record<string, string> = {}): Promise<FinishedRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
