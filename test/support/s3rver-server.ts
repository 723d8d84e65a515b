import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

export interface S3rverServer {
  /** e.g. http://127.0.0.1:41234 */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** stop the server and remove its data directory; safe to call twice */
  stop(): Promise<void>;
}

export interface StartS3rverOptions {
  /** bucket to create at startup; default 'arca-test' */
  bucket?: string;
}

/**
 * s3rver runs in a child Node process rather than in the test process: its ListObjectsV2
 * continuation tokens are DES-encrypted, and DES is only available with OpenSSL 3's legacy
 * provider (`--openssl-legacy-provider`), which can only be enabled at process start. Without it
 * every truncated (paginated) listing fails with a 500 InternalError.
 *
 * The child binds 127.0.0.1 on port 0, creates the bucket (s3rver's configureBuckets), reports its
 * port on stdout, and exits when told to or when its stdin closes (so it never outlives the tests).
 */
const CHILD_SCRIPT = `
const S3rver = require(process.env.ARCA_S3RVER_MODULE);
const { directory, bucket } = JSON.parse(process.env.ARCA_S3RVER_CONFIG);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  server.close().catch(() => undefined).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); },
);
`;

const require = createRequire(import.meta.url);

/** Start an s3rver on a random loopback port with a fresh data directory and one empty bucket. */
export async function startS3rver(options: StartS3rverOptions = {}): Promise<S3rverServer> {
  const bucket = options.bucket ?? 'arca-test';
  const directory = await mkdtemp(path.join(os.tmpdir(), 'arca-s3rver-'));
  let started: { child: ChildProcess; port: number };
  try {
    try {
      started = await spawnChild(['--openssl-legacy-provider'], directory, bucket);
    } catch {
      // a Node built without the legacy provider: s3rver still works, only paginated listings fail
      started = await spawnChild([], directory, bucket);
    }
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const { child, port } = started;
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    stop() {
      stopping ??= (async () => {
        try {
          await stopChild(child);
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
      })();
      return stopping;
    },
  };
}

function spawnChild(nodeFlags: string[], directory: string, bucket: string): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, '-e', CHILD_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        ARCA_S3RVER_MODULE: require.resolve('s3rver'),
        ARCA_S3RVER_CONFIG: JSON.stringify({ directory, bucket }),
      },
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const timer = setTimeout(() => fail(new Error('s3rver did not start within 20 s')), 20_000);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      reject(err);
    };
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout.split('\n')[0];
      if (settled || !stdout.includes('\n') || line === undefined) return;
      settled = true;
      clearTimeout(timer);
      try {
        const { port } = JSON.parse(line) as { port: number };
        resolve({ child, port });
      } catch {
        child.kill('SIGKILL');
        reject(new Error(`unexpected output from s3rver: ${line}`));
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (err) => fail(err));
    child.on('exit', (code, signal) => fail(new Error(`s3rver exited early (${signal ?? code}): ${stderr.trim()}`)));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
    child.stdin?.end();
  });
}
