/**
 * `npm run bench:keyproxy`: derived keys per second through the key proxy's HTTP API.
 *
 * Starts `arca-key-proxy serve` as a child process (local KEK, strict mode with a grant, default
 * logging: what a deployment runs, except the per-agent rate limit, raised so the bench measures
 * the proxy and not its limiter), creates a store, then asks for write keys in batches of 1, 100
 * and 1000 blob IDs with a few requests in flight on keep-alive connections. Every request is a
 * full one: job token (cached verification) + a fresh DPoP proof signed by the bench (the agent),
 * body validation, grant lookup, rate limit, derivation, JSON, audit event, access log line.
 *
 * Reports keys/s, requests/s, p50/p99 latency and the proxy's own CPU use (from /proc: the proxy
 * is one Node process, so "keys per proxy CPU-second" is the single-core figure). Note that the
 * client runs on the same machine and signs one Ed25519 proof per request, which dominates at
 * small batches.
 *
 * Env: BENCH_SECONDS (per batch size, default 4), BENCH_CONCURRENCY (default 4), BENCH_BATCHES
 * (default 1,100,1000), BENCH_PROXY_NODE_ARGS (extra node flags for the proxy, e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/kp-prof" to profile it).
 * Target: >= 50,000 keys/s at batch 1000.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProof, generateAgentIdentity, issueJobToken, publicJwkOf, type AgentIdentity } from '@arca/crypto';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KEY_PROXY = path.join(ROOT, 'apps/key-proxy/bin/arca-key-proxy.ts');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const BATCHES = (process.env.BENCH_BATCHES ?? '1,100,1000').split(',').map(Number);
const PROXY_NODE_ARGS = (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const TARGET_KEYS_PER_SECOND = 50_000;
const ISSUER = 'https://control-plane.bench';
const ORG = 'org-bench';

interface Result {
  batch: number;
  requests: number;
  keys: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  proxyCpuSeconds: number;
  errors: number;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(process.execPath, [KEY_PROXY, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`arca-key-proxy ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function startProxy(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [...PROXY_NODE_ARGS, KEY_PROXY, 'serve'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line) {
        // keep draining the access log so the proxy never blocks on a full pipe
        resolve({ child, url: (JSON.parse(line) as { url: string }).url });
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the key proxy exited (${code}) before listening: ${out}`)));
  });
}

/** user + system CPU seconds of a process (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function post(agent: HttpAgent, url: URL, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function measure(base: string, pid: number, identity: AgentIdentity, token: string, envelope: string, store: string, batch: number, seconds: number): Promise<Result> {
  const url = new URL(`${base}/v1/stores/${store}/keys`);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: CONCURRENCY });
  // a few different bodies, built once: the client should spend its time on proofs, not JSON
  const bodies = Array.from({ length: 8 }, () =>
    JSON.stringify({ envelope, purpose: 'write', blobIds: Array.from({ length: batch }, () => randomBytes(32).toString('hex')) }),
  );
  const latencies: number[] = [];
  let requests = 0;
  let errors = 0;
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      let i = worker;
      while (performance.now() < deadline) {
        const body = bodies[i++ % bodies.length]!;
        const t0 = performance.now();
        const proof = await createProof(identity, { method: 'POST', url: url.href, token, body });
        const r = await post(agent, url, { authorization: `DPoP ${token}`, dpop: proof }, body);
        latencies.push(performance.now() - t0);
        if (r.status === 200) requests++;
        else if (errors++ === 0) console.error(`  unexpected ${r.status}: ${r.text.slice(0, 300)}`);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const proxyCpuSeconds = cpuSeconds(pid) - cpuBefore;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? 0;
  return { batch, requests, keys: requests * batch, seconds: elapsed, p50Ms: pct(50), p99Ms: pct(99), proxyCpuSeconds, errors };
}

/**
 * A first backup of the shared benchmark dataset (BENCH_DIR/data/v1, default /tmp/arca-bench,
 * generated by ../shared/bench/gen-dataset.mjs if missing) with the real `arca` CLI: into a fresh
 * passphrase store, and into a fresh managed store through a key proxy started for it (strict
 * mode with a grant, local KEK, default rate limit: a deployment's settings). Same dataset, same
 * store settings (defaults), a new store for every run, BENCH_BACKUP_RUNS runs (default 3) in
 * alternating order; medians are reported.
 *
 * Two times per mode: the backup itself as the engine reports it (`summary.durationMs`: index,
 * chunking, keys, sealing, upload; it leaves out opening the store, which is an Argon2id unlock
 * with a passphrase and one HTTP request with the proxy), and the whole command's wall time. The
 * overhead target (<= 5%) applies to the backup itself. The proxy runs on the same machine and
 * competes with the agent for its cores, so this is a pessimistic figure.
 */
const BACKUP_OVERHEAD_TARGET = 0.05;
const ARCA = path.join(ROOT, 'apps/agent/bin/arca.mjs');

interface BackupSample {
  wallSeconds: number;
  backupSeconds: number;
  /** CPU time (user + system, all threads) of the arca process */
  agentCpuSeconds: number;
  /** CPU time the key proxy spent during the backup (0 with a passphrase) */
  proxyCpuSeconds: number;
}

/**
 * CPU seconds (user + system, all threads) a process has used so far, from /proc/PID/stat; the
 * wall-clock overhead on a busy 2-core machine is mostly the extra CPU, which this shows directly.
 */
function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0; // exited between samples
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Run the arca CLI (clean ARCA_* environment plus `env`); resolve with wall time, CPU time and stdout. */
function runArca(args: string[], env: Record<string, string>): Promise<{ seconds: number; cpuSeconds: number; stdout: string }> {
  const fullEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ARCA_')) fullEnv[k] = v;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [ARCA, ...args], { env: { ...fullEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let cpuSeconds = 0;
    const sampler = setInterval(() => (cpuSeconds = Math.max(cpuSeconds, cpuSecondsOf(child.pid))), 20);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      clearInterval(sampler);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) reject(new Error(`arca ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ seconds, cpuSeconds, stdout });
    });
  });
}

async function timedBackup(source: string, env: Record<string, string>, proxyPid?: number): Promise<BackupSample> {
  const proxyBefore = cpuSecondsOf(proxyPid);
  const r = await runArca(['backup', source, '--json', '--no-progress'], env);
  const summary = (JSON.parse(r.stdout) as { summary: { durationMs: number } }).summary;
  return { wallSeconds: r.seconds, backupSeconds: summary.durationMs / 1000, agentCpuSeconds: r.cpuSeconds, proxyCpuSeconds: cpuSecondsOf(proxyPid) - proxyBefore };
}

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function benchBackupThroughProxy(): Promise<void> {
  const benchDir = process.env.BENCH_DIR ?? '/tmp/arca-bench';
  const dataDir = path.join(benchDir, 'data');
  const source = path.join(dataDir, 'v1');
  if (!existsSync(path.join(dataDir, 'CHANGES.json'))) {
    console.log(`\ngenerating the dataset in ${dataDir} (about 20 s)...`);
    const r = spawnSync(process.execPath, [path.join(ROOT, '../shared/bench/gen-dataset.mjs'), dataDir], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('dataset generation failed');
  }
  const runs = Math.max(1, Number(process.env.BENCH_BACKUP_RUNS ?? 3));
  const dir = mkdtempSync(path.join(tmpdir(), 'arca-kp-backup-bench-'));
  const work = path.join(benchDir, 'work-key-proxy');
  let child: ChildProcess | undefined;
  try {
    mkdirSync(work, { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const signingKey = { privateKey, kid: 'bench-backup-1' };
    writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...publicJwkOf(publicKey), kid: 'bench-backup-1', alg: 'EdDSA', use: 'sig' }] }));
    const kekFile = path.join(dir, 'kek.hex');
    cli(['kek', 'create-local', '--out', kekFile]);
    const kpData = path.join(dir, 'data');
    const agentKey = path.join(dir, 'agent.pem');
    const thumbprint = (await runArca(['agent', 'keygen', '--out', agentKey, '-q'], {})).stdout.trim();
    const proxy = await startProxy({
      ARCA_KP_LISTEN: '127.0.0.1:0', ARCA_KP_DATA_DIR: kpData, ARCA_KP_ISSUER: ISSUER, ARCA_KP_JWKS_FILE: path.join(dir, 'jwks.json'),
      ARCA_KP_PROVIDER: 'local', ARCA_KP_LOCAL_KEK_FILE: kekFile, ARCA_KP_STRICT: 'true',
    });
    child = proxy.child;
    const token = (store: string, ops: ('init' | 'backup')[]) =>
      issueJobToken({ issuer: ISSUER, org: ORG, agent: 'bench-agent', store, job: `bench-${ops[0]}`, ops, agentKeyThumbprint: thumbprint, lifetimeSeconds: 3600 }, signingKey);

    const passphrase = async (): Promise<BackupSample> => {
      const store = path.join(work, 'passphrase-store');
      rmSync(store, { recursive: true, force: true });
      const env = { ARCA_STORE: store, ARCA_PASSPHRASE: 'bench-passphrase-not-secret' };
      await runArca(['init', '-q'], env);
      try {
        return await timedBackup(source, env);
      } finally {
        rmSync(store, { recursive: true, force: true });
      }
    };
    const managed = async (): Promise<BackupSample> => {
      const store = path.join(work, 'managed-store');
      rmSync(store, { recursive: true, force: true });
      const id = randomBytes(32).toString('hex');
      cli(['grant', 'approve', '--org', ORG, '--store', id, '--agent-key-thumbprint', thumbprint, '--data-dir', kpData]);
      const env = { ARCA_STORE: store, ARCA_KEY_PROXY_URL: proxy.url, ARCA_AGENT_KEY_FILE: agentKey };
      await runArca(['init', '-q'], { ...env, ARCA_KEY_PROXY_TOKEN: await token(id, ['init']) });
      try {
        return await timedBackup(source, { ...env, ARCA_KEY_PROXY_TOKEN: await token(id, ['backup']) }, proxy.child.pid);
      } finally {
        rmSync(store, { recursive: true, force: true });
      }
    };

    console.log(`\nbackup of ${source} through the key proxy vs with a passphrase: ${runs} run(s) each, fresh stores, default store settings`);
    const samples: Record<'passphrase' | 'proxy', BackupSample[]> = { passphrase: [], proxy: [] };
    for (let i = 0; i < runs; i++) {
      // alternate the order so drift on a shared machine favours neither
      for (const mode of i % 2 === 0 ? (['passphrase', 'proxy'] as const) : (['proxy', 'passphrase'] as const)) {
        const sample = mode === 'passphrase' ? await passphrase() : await managed();
        samples[mode].push(sample);
        console.log(
          `  run ${i + 1}/${runs} ${mode.padEnd(10)} backup ${sample.backupSeconds.toFixed(2)} s, command ${sample.wallSeconds.toFixed(2)} s, `
          + `CPU agent ${sample.agentCpuSeconds.toFixed(2)} s + proxy ${sample.proxyCpuSeconds.toFixed(2)} s`,
        );
      }
    }
    const med = (mode: 'passphrase' | 'proxy', f: (s: BackupSample) => number) => medianOf(samples[mode].map(f));
    const backupP = med('passphrase', (s) => s.backupSeconds);
    const backupK = med('proxy', (s) => s.backupSeconds);
    const wallP = med('passphrase', (s) => s.wallSeconds);
    const wallK = med('proxy', (s) => s.wallSeconds);
    const pct = (a: number, b: number) => `${((b / a - 1) * 100).toFixed(1)}%`;
    console.log('\n| medians | passphrase | key proxy | overhead |');
    console.log('|---|---:|---:|---:|');
    console.log(`| backup (engine summary) | ${backupP.toFixed(2)} s | ${backupK.toFixed(2)} s | ${pct(backupP, backupK)} |`);
    console.log(`| whole command (wall) | ${wallP.toFixed(2)} s | ${wallK.toFixed(2)} s | ${pct(wallP, wallK)} |`);
    const cpuP = med('passphrase', (s) => s.agentCpuSeconds);
    const cpuK = med('proxy', (s) => s.agentCpuSeconds + s.proxyCpuSeconds);
    console.log(`| CPU, agent + proxy | ${cpuP.toFixed(2)} s | ${cpuK.toFixed(2)} s (proxy ${med('proxy', (s) => s.proxyCpuSeconds).toFixed(2)} s) | ${pct(cpuP, cpuK)} |`);
    const met = backupK / backupP - 1 <= BACKUP_OVERHEAD_TARGET;
    console.log(`\ntarget: backup overhead through the key proxy <= ${BACKUP_OVERHEAD_TARGET * 100}% — ${met ? 'met' : 'NOT met'} (${pct(backupP, backupK)})`);
    if (!met) process.exitCode = 1;
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'arca-kp-bench-'));
  let child: ChildProcess | undefined;
  try {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const signingKey = { privateKey, kid: 'bench-1' };
    writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...publicJwkOf(publicKey), kid: 'bench-1', alg: 'EdDSA', use: 'sig' }] }));
    const kekFile = path.join(dir, 'kek.hex');
    cli(['kek', 'create-local', '--out', kekFile]);
    const dataDir = path.join(dir, 'data');
    const identity = generateAgentIdentity();
    const store = randomBytes(32).toString('hex');
    cli(['grant', 'approve', '--org', ORG, '--store', store, '--agent-key-thumbprint', identity.thumbprint, '--data-dir', dataDir]);

    const proxy = await startProxy({
      ARCA_KP_LISTEN: '127.0.0.1:0', ARCA_KP_DATA_DIR: dataDir, ARCA_KP_ISSUER: ISSUER, ARCA_KP_JWKS_FILE: path.join(dir, 'jwks.json'),
      ARCA_KP_PROVIDER: 'local', ARCA_KP_LOCAL_KEK_FILE: kekFile, ARCA_KP_STRICT: 'true', ARCA_KP_RATE_LIMIT_KEYS_PER_SECOND: '1000000000',
    });
    child = proxy.child;
    const pid = child.pid!;
    const token = await issueJobToken(
      { issuer: ISSUER, org: ORG, agent: 'bench-agent', store, job: 'bench', ops: ['init', 'backup'], agentKeyThumbprint: identity.thumbprint, lifetimeSeconds: 3600 },
      signingKey,
    );
    const initUrl = `${proxy.url}/v1/stores/${store}/master-key`;
    const init = await post(new HttpAgent(), new URL(initUrl), {
      authorization: `DPoP ${token}`, dpop: await createProof(identity, { method: 'POST', url: initUrl, token, body: '{}' }),
    }, '{}');
    if (init.status !== 200) throw new Error(`init failed: ${init.status} ${init.text}`);
    const { envelope } = JSON.parse(init.text) as { envelope: string };

    console.log(`key proxy ${proxy.url} (local KEK, strict mode), ${CONCURRENCY} requests in flight, ${SECONDS} s per batch size, node ${process.version}\n`);
    const results: Result[] = [];
    for (const batch of BATCHES) {
      await measure(proxy.url, pid, identity, token, envelope, store, batch, 0.5); // warm-up
      results.push(await measure(proxy.url, pid, identity, token, envelope, store, batch, SECONDS));
    }

    console.log('| batch | keys/s | requests/s | p50 | p99 | proxy CPU | keys per proxy CPU-second | errors |');
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of results) {
      const cpu = r.proxyCpuSeconds / r.seconds;
      console.log(
        `| ${r.batch} | ${Math.round(r.keys / r.seconds).toLocaleString('en-US')} | ${Math.round(r.requests / r.seconds).toLocaleString('en-US')} | ` +
          `${r.p50Ms.toFixed(2)} ms | ${r.p99Ms.toFixed(2)} ms | ${(cpu * 100).toFixed(0)}% | ` +
          `${r.proxyCpuSeconds > 0 ? Math.round(r.keys / r.proxyCpuSeconds).toLocaleString('en-US') : 'n/a'} | ${r.errors} |`,
      );
    }
    const at1000 = results.find((r) => r.batch === 1000);
    const rate = at1000 ? at1000.keys / at1000.seconds : NaN;
    console.log(`\ntarget: >= ${TARGET_KEYS_PER_SECOND.toLocaleString('en-US')} keys/s at batch 1000 — ${rate >= TARGET_KEYS_PER_SECOND ? 'met' : 'NOT met'} (${Math.round(rate).toLocaleString('en-US')} keys/s)`);
    await benchBackupThroughProxy();
    if (!(rate >= TARGET_KEYS_PER_SECOND) || results.some((r) => r.errors > 0)) process.exitCode = 1;
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
