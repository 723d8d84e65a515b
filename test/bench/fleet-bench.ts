/**
 * `npm run bench:fleet`: a simulated fleet against one control plane on loopback (issue 5).
 *
 * Creates a fresh Postgres database (as bench:api does), starts `arca-control-plane serve` on it,
 * creates an organization, an owner API token and one enrollment token, and enrolls BENCH_AGENTS
 * (default 2,000) simulated agents — each with its own Ed25519 key, through the real
 * `/agent/v1/enroll`. No backups run: the agents only talk to the control plane, exactly as the
 * daemon does (docs/fleet.md §2-4), every request signed with a fresh proof of possession.
 *
 * Phases:
 * 1. **connected fleet + heartbeats**: every agent holds a long-poll `jobs/lease` open (one
 *    connection each, re-issued when it returns), and heartbeats are sent open-loop at
 *    BENCH_HEARTBEAT_RATE per second (default 2,000: each agent once a second), round-robin over
 *    the agents, on a pool of keep-alive connections. Latency counts from each heartbeat's
 *    scheduled send time, so queueing in the generator or the server shows up in it.
 * 2. **leasing**: jobs are enqueued for random agents at BENCH_JOB_RATE per second (the way the
 *    control plane enqueues them: a row and a NOTIFY in one transaction), while heartbeats go on;
 *    lease latency = from the enqueue's commit to the agent's long-poll returning the job. Each
 *    agent then reports the job complete (its latency is reported too).
 *
 * Reports heartbeats/s achieved, heartbeat p50/p99, lease p50/p99, completion p50/p99, the control
 * plane's CPU (cores) and peak RSS, and the machine's busy cores. Targets on this 2-core machine:
 * >= 2,000 heartbeats/s with p99 < 100 ms; lease p99 < 50 ms once a job is ready.
 *
 * Env: BENCH_AGENTS, BENCH_HEARTBEAT_RATE, BENCH_SECONDS (per phase, default 15), BENCH_JOB_RATE
 * (default 100), BENCH_HEARTBEAT_CONNECTIONS (default 64), BENCH_CP_NODE_ARGS, BENCH_CP_ENV
 * ("KEY=value,..."), as in bench:api; BENCH_CP_LOG (a file for the control plane's log).
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createProof, generateAgentIdentity, type AgentIdentity } from '@arca/crypto';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { BenchConnection, postRequest, type BenchResponse } from './support/bench-connection.ts';
import { insertBenchOrganization, startBenchControlPlane, type BenchControlPlane } from './support/bench-control-plane.ts';
import { cpuSeconds, machineBusySeconds, peakRssMiB, percentile } from './support/process-stats.ts';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 2000);
const HEARTBEAT_RATE = Number(process.env.BENCH_HEARTBEAT_RATE ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const JOB_RATE = Number(process.env.BENCH_JOB_RATE ?? 100);
const HEARTBEAT_CONNECTIONS = Number(process.env.BENCH_HEARTBEAT_CONNECTIONS ?? 64);
const LEASE_WAIT_SECONDS = 25;
const TARGETS = { heartbeatRate: 2000, heartbeatP99Ms: 100, leaseP99Ms: 50 };

interface SimAgent {
  index: number;
  identity: AgentIdentity;
  agentId: string;
  credential: string;
  /** its own connection for the long-poll */
  poll: BenchConnection | null;
}

/** One organization with its owner's API token, and the store the simulated jobs name (no agent ever opens it: the jobs are completed at once). */
async function seedOrganization(scratch: ScratchDatabase): Promise<{ orgId: string; token: string; storeRowId: string }> {
  const orgId = randomUUID();
  const storeRowId = randomUUID();
  const token = await scratch.owner.begin(async (tx) => {
    const created = await insertBenchOrganization(tx, { orgId, userId: randomUUID(), tokenId: randomUUID() }, { organization: 'bench fleet', email: 'owner@fleet.bench', displayName: 'Owner' });
    await tx`INSERT INTO stores (org_id, id, name, store_id, kind, url, key_proxy_url, status)
             VALUES (${orgId}, ${storeRowId}, 'bench', ${randomBytes(32).toString('hex')}, 'fs', 'fs:///var/lib/arca/bench-store', 'https://key-proxy.bench.invalid', 'ready')`;
    return created;
  });
  return { orgId, token, storeRowId };
}

/** The fleet keys every replica shares with Postgres (docs/control-plane.md "Fleet keys"): the secrets key and the job-signing key, 0600. */
async function writeFleetKeys(keyDir: string): Promise<{ secretsKeyFile: string; signingKeyFile: string }> {
  const secretsKeyFile = path.join(keyDir, 'secrets.key');
  const signingKeyFile = path.join(keyDir, 'job-signing-key.pem');
  await writeFile(secretsKeyFile, randomBytes(32), { mode: 0o600 });
  await writeFile(signingKeyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { secretsKeyFile, signingKeyFile };
}

async function startControlPlane(scratch: ScratchDatabase, keyDir: string): Promise<BenchControlPlane> {
  const keys = await writeFleetKeys(keyDir);
  return startBenchControlPlane(scratch, { ARCA_CP_SECRETS_KEY_FILE: keys.secretsKeyFile, ARCA_CP_JOB_SIGNING_KEY_FILE: keys.signingKeyFile });
}

/** A signed agent request (docs/fleet.md §2): `authorization: Agent <credential>` + a fresh DPoP proof. */
async function agentRequest(base: string, agent: Pick<SimAgent, 'identity' | 'credential'>, pathname: string, body: unknown): Promise<Buffer> {
  const url = new URL(pathname, base);
  const text = JSON.stringify(body);
  const proof = await createProof(agent.identity, { method: 'POST', url: url.toString(), token: agent.credential, body: text });
  return postRequest(url, { authorization: `Agent ${agent.credential}`, dpop: proof }, text);
}

async function graphql(base: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const response = await fetch(new URL('/graphql', base), {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
  });
  const json = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown };
  if (json.errors != null || json.data == null) throw new Error(`GraphQL failed: ${JSON.stringify(json.errors)}`);
  return json.data;
}

async function enrollAll(base: string, enrollmentToken: string): Promise<SimAgent[]> {
  const agents: SimAgent[] = [];
  const url = new URL('/agent/v1/enroll', base);
  const connections = Array.from({ length: 16 }, () => new BenchConnection(url));
  let next = 0;
  const started = performance.now();
  await Promise.all(connections.map(async (connection) => {
    while (next < AGENTS) {
      const index = next++;
      const identity = generateAgentIdentity();
      const body = JSON.stringify({ token: enrollmentToken, publicJwk: identity.publicJwk, hostname: `bench-${index}`, os: 'linux', arch: 'x64', version: 'bench', labels: { environment: 'bench' } });
      const proof = await createProof(identity, { method: 'POST', url: url.toString(), token: enrollmentToken, body });
      const r = await connection.request(postRequest(url, { dpop: proof }, body));
      if (r.status !== 201 && r.status !== 200) throw new Error(`enrollment failed (${r.status}): ${r.text.slice(0, 300)}`);
      const enrolled = JSON.parse(r.text) as { agentId: string; credential: string };
      agents[index] = { index, identity, agentId: enrolled.agentId, credential: enrolled.credential, poll: null };
    }
  }));
  for (const c of connections) c.close();
  console.log(`enrolled ${AGENTS} agents in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return agents;
}

interface LeaseWatch {
  /** job ID -> when its enqueue committed (performance.now()) */
  enqueuedAt: Map<string, number>;
  /** job ID -> when its agent had it (a job may arrive before the enqueuer has seen its own commit) */
  arrivedAt: Map<string, number>;
  completeMs: number[];
  errors: number;
  stopped: boolean;
}

/**
 * Each agent keeps one long-poll open; a returned job is completed at once on the agent's second
 * connection while the poll is re-issued (as the daemon polls for more work while jobs run), so a
 * job queued for an agent that is busy completing another is not counted as lease latency.
 */
function runLongPolls(base: string, agents: SimAgent[], watch: LeaseWatch): Promise<void> {
  const url = new URL('/agent/v1/jobs/lease', base);
  return Promise.all(agents.map(async (agent) => {
    agent.poll = new BenchConnection(url);
    const completion = new BenchConnection(url);
    let completing: Promise<void> = Promise.resolve();
    while (!watch.stopped) {
      let r: BenchResponse;
      try {
        r = await agent.poll.request(await agentRequest(base, agent, '/agent/v1/jobs/lease', { slots: 1, waitSeconds: LEASE_WAIT_SECONDS }));
      } catch (err) {
        if (watch.stopped) break;
        throw err;
      }
      const arrived = performance.now();
      if (r.status !== 200) {
        if (watch.errors++ === 0) console.error(`  lease: unexpected ${r.status}: ${r.text.slice(0, 300)}`);
        continue;
      }
      const { jobs } = JSON.parse(r.text) as { jobs: { id: string; attempt: number }[] };
      for (const job of jobs) {
        watch.arrivedAt.set(job.id, arrived);
        // one completion at a time on the agent's completion connection
        completing = completing.then(async () => {
          const t0 = performance.now();
          const done = await completion.request(await agentRequest(base, agent, `/agent/v1/jobs/${job.id}/complete`, { attempt: job.attempt, outcome: 'succeeded', result: {} }));
          watch.completeMs.push(performance.now() - t0);
          if (done.status !== 200 && watch.errors++ === 0) console.error(`  complete: unexpected ${done.status}: ${done.text.slice(0, 300)}`);
        });
      }
    }
    await completing.catch(() => undefined);
    completion.close();
  })).then(() => undefined);
}

interface HeartbeatResult {
  sent: number;
  ok: number;
  errors: number;
  seconds: number;
  latencies: number[];
}

/** Open-loop heartbeats at `rate`/s, round-robin over the agents, for `seconds`. */
async function heartbeats(base: string, agents: SimAgent[], rate: number, seconds: number): Promise<HeartbeatResult> {
  const url = new URL('/agent/v1/heartbeat', base);
  const pool = Array.from({ length: HEARTBEAT_CONNECTIONS }, () => new BenchConnection(url));
  const idle = [...pool];
  const queue: (() => void)[] = [];
  const result: HeartbeatResult = { sent: 0, ok: 0, errors: 0, seconds, latencies: [] };
  const started = performance.now();
  const total = Math.floor(rate * seconds);
  const inFlight: Promise<void>[] = [];
  const take = (): Promise<BenchConnection> => {
    const c = idle.pop();
    return c != null ? Promise.resolve(c) : new Promise((resolve) => queue.push(() => resolve(idle.pop()!)));
  };
  const give = (c: BenchConnection): void => {
    idle.push(c);
    queue.shift()?.();
  };
  for (let i = 0; i < total; i++) {
    const scheduled = started + (i * 1000) / rate;
    const wait = scheduled - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const agent = agents[i % agents.length]!;
    result.sent++;
    inFlight.push((async () => {
      const connection = await take();
      try {
        const body = { version: 'bench', hostname: `bench-${agent.index}`, os: 'linux', arch: 'x64', uptimeSeconds: 1000 + i, load: [0.1, 0.1, 0.1], freeBytes: 1e12, runningJobs: [] };
        const r = await connection.request(await agentRequest(base, agent, '/agent/v1/heartbeat', body));
        result.latencies.push(performance.now() - scheduled);
        if (r.status === 200) result.ok++;
        else if (result.errors++ === 0) console.error(`  heartbeat: unexpected ${r.status}: ${r.text.slice(0, 300)}`);
      } finally {
        give(connection);
      }
    })());
  }
  await Promise.all(inFlight);
  result.seconds = (performance.now() - started) / 1000;
  for (const c of pool) c.close();
  result.latencies.sort((a, b) => a - b);
  return result;
}

async function main(): Promise<void> {
  console.log(`bench:fleet — ${AGENTS} simulated agents, heartbeats at ${HEARTBEAT_RATE}/s, jobs at ${JOB_RATE}/s, ${SECONDS} s per phase`);
  const scratch = await createScratchDatabase();
  const keyDir = await mkdtemp(path.join(tmpdir(), 'arca-fleet-bench-'));
  let cp: BenchControlPlane | undefined;
  try {
    const org = await seedOrganization(scratch);
    const started = await startControlPlane(scratch, keyDir);
    cp = started;
    const pid = started.child.pid!;
    const base = started.url;
    const created = await graphql(base, org.token, 'mutation($n: Int!) { createEnrollmentToken(input: { name: "bench", maxUses: $n, expiresInHours: 2 }) { token } }', { n: AGENTS });
    const enrollmentToken = (created.createEnrollmentToken as { token: string }).token;
    const agents = await enrollAll(base, enrollmentToken);

    const watch: LeaseWatch = { enqueuedAt: new Map(), arrivedAt: new Map(), completeMs: [], errors: 0, stopped: false };
    const polls = runLongPolls(base, agents, watch);
    await new Promise((r) => setTimeout(r, 2000));
    // as in bench:api: statistics for the planner and no checkpoint of the enrollment burst inside a measured phase
    await scratch.owner`VACUUM (ANALYZE)`;
    await scratch.owner`CHECKPOINT`;
    // warm-up, not measured: heartbeats, and leases (prepared statements on every pooled connection, JIT)
    const warmJobs = Array.from({ length: Math.min(agents.length, 50) }, (_, i) => ({ agent: agents[i]!, jobId: randomUUID() }));
    for (const { agent, jobId } of warmJobs) await enqueueJob(scratch, org.orgId, org.storeRowId, agent.agentId, jobId);
    await heartbeats(base, agents, Math.min(HEARTBEAT_RATE, 500), 3);

    const generatorSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
    let cpu0 = cpuSeconds(pid);
    let gen0 = generatorSeconds();
    let machine0 = machineBusySeconds();
    let commits0 = await committedTransactions(scratch);
    const hb = await heartbeats(base, agents, HEARTBEAT_RATE, SECONDS);
    const hbCommits = (await committedTransactions(scratch) - commits0) / hb.seconds;
    const hbCores = (cpuSeconds(pid) - cpu0) / hb.seconds;
    const hbGenerator = (generatorSeconds() - gen0) / hb.seconds;
    const hbMachine = (machineBusySeconds() - machine0) / hb.seconds;

    cpu0 = cpuSeconds(pid);
    gen0 = generatorSeconds();
    machine0 = machineBusySeconds();
    commits0 = await committedTransactions(scratch);
    const leaseStarted = performance.now();
    const enqueueing = (async () => {
      const total = Math.floor(JOB_RATE * SECONDS);
      for (let i = 0; i < total; i++) {
        const wait = leaseStarted + (i * 1000) / JOB_RATE - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const agent = agents[Math.floor(Math.random() * agents.length)]!;
        const jobId = randomUUID();
        await enqueueJob(scratch, org.orgId, org.storeRowId, agent.agentId, jobId);
        watch.enqueuedAt.set(jobId, performance.now());
      }
    })();
    const hb2 = await heartbeats(base, agents, HEARTBEAT_RATE, SECONDS);
    await enqueueing;
    await new Promise((r) => setTimeout(r, 2000)); // the last leases and completions
    const leaseSeconds = (performance.now() - leaseStarted) / 1000;
    const leaseCores = (cpuSeconds(pid) - cpu0) / leaseSeconds;
    const leaseGenerator = (generatorSeconds() - gen0) / leaseSeconds;
    const leaseMachine = (machineBusySeconds() - machine0) / leaseSeconds;
    const leaseCommits = (await committedTransactions(scratch) - commits0) / leaseSeconds;
    const rss = peakRssMiB(pid);
    watch.stopped = true;

    // lease latency of the measured jobs (the warm-up's are not in enqueuedAt); a job that arrived
    // before its enqueuer saw the commit counts as 0
    const leases = [...watch.enqueuedAt].flatMap(([id, at]) => { const arrived = watch.arrivedAt.get(id); return arrived == null ? [] : [{ at: at - leaseStarted, ms: Math.max(0, arrived - at) }]; });
    const leaseMs = leases.map((l) => l.ms).sort((a, b) => a - b);
    const slowest = [...leases].sort((a, b) => b.ms - a.ms).slice(0, 8);
    const runtime = await cpRuntimeStats(base);
    watch.completeMs.sort((a, b) => a - b);
    const hbRate = hb.ok / hb.seconds;
    const hbMet = hbRate >= TARGETS.heartbeatRate * 0.98 && percentile(hb.latencies, 99) < TARGETS.heartbeatP99Ms && hb.errors === 0;
    const leaseMet = leaseMs.length === watch.enqueuedAt.size && percentile(leaseMs, 99) < TARGETS.leaseP99Ms && watch.errors === 0;
    console.log('\n| measure | value | p50 ms | p99 ms | errors | CPU cores: control plane / load generator / machine | target | met |');
    console.log('|---|---:|---:|---:|---:|---:|---|---|');
    console.log(`| heartbeats, ${AGENTS} long-pollers connected | ${hbRate.toFixed(0)}/s | ${percentile(hb.latencies, 50).toFixed(1)} | ${percentile(hb.latencies, 99).toFixed(1)} | ${hb.errors} | ${hbCores.toFixed(2)} / ${hbGenerator.toFixed(2)} / ${hbMachine.toFixed(2)} | >= ${TARGETS.heartbeatRate}/s, p99 < ${TARGETS.heartbeatP99Ms} ms | ${hbMet ? 'yes' : 'NO'} |`);
    console.log(`| heartbeats while leasing | ${(hb2.ok / hb2.seconds).toFixed(0)}/s | ${percentile(hb2.latencies, 50).toFixed(1)} | ${percentile(hb2.latencies, 99).toFixed(1)} | ${hb2.errors} | ${leaseCores.toFixed(2)} / ${leaseGenerator.toFixed(2)} / ${leaseMachine.toFixed(2)} | — | — |`);
    console.log(`| lease (enqueue commit -> agent has the job) | ${leaseMs.length}/${watch.enqueuedAt.size} jobs | ${percentile(leaseMs, 50).toFixed(1)} | ${percentile(leaseMs, 99).toFixed(1)} | ${watch.errors} | (same) | p99 < ${TARGETS.leaseP99Ms} ms | ${leaseMet ? 'yes' : 'NO'} |`);
    console.log(`| result reporting (complete) | ${watch.completeMs.length} | ${percentile(watch.completeMs, 50).toFixed(1)} | ${percentile(watch.completeMs, 99).toFixed(1)} | — | (same) | — | — |`);
    console.log(`\ncontrol plane peak RSS: ${rss.toFixed(0)} MiB; ${runtime}`);
    console.log(`Postgres commits/s (the control plane's and the enqueuer's): ${hbCommits.toFixed(0)} with heartbeats only, ${leaseCommits.toFixed(0)} while leasing ${JOB_RATE} jobs/s`);
    console.log(`lease p90 ${percentile(leaseMs, 90).toFixed(1)} ms, p95 ${percentile(leaseMs, 95).toFixed(1)} ms, max ${(leaseMs.at(-1) ?? 0).toFixed(1)} ms; slowest (ms @ s into the phase): ${slowest.map((l) => `${l.ms.toFixed(0)}@${(l.at / 1000).toFixed(1)}`).join(' ')}`);
    if (!hbMet || !leaseMet) process.exitCode = 1;
    for (const agent of agents) agent.poll?.close();
    await polls.catch(() => undefined);
  } finally {
    await cp?.stop();
    await scratch.drop();
    await rm(keyDir, { recursive: true, force: true });
  }
}

/**
 * Enqueues one check job for an agent the way the control plane does (scheduler-jobs.ts): the row,
 * its `queued` event and the `arca_jobs` NOTIFY in one transaction, so the agent's long poll wakes
 * at commit on whichever replica holds it.
 */
/** Transactions committed in the scratch database so far (pg_stat_database; the statistics lag by up to a second). */
async function committedTransactions(scratch: ScratchDatabase): Promise<number> {
  await scratch.owner`SELECT pg_stat_clear_snapshot()`;
  const [row] = await scratch.owner<{ n: string }[]>`SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()`;
  return Number(row?.n ?? 0);
}

/** GC pauses and event-loop delay of the control plane since it started, from its own /metrics (prom-client's default metrics). */
async function cpRuntimeStats(base: string): Promise<string> {
  const response = await fetch(new URL('/metrics', base)).catch(() => null);
  if (response == null || !response.ok) return 'runtime metrics: unavailable';
  const text = await response.text();
  const value = (name: string, labels = '') => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}`}`));
    return line == null ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const gcSeconds = (kind: string) => value('arca_cp_nodejs_gc_duration_seconds_sum', `kind="${kind}"`);
  const gcCount = (kind: string) => value('arca_cp_nodejs_gc_duration_seconds_count', `kind="${kind}"`);
  return `GC: major ${gcCount('major')} pauses ${(gcSeconds('major') * 1000).toFixed(0)} ms, minor ${gcCount('minor')} pauses ${(gcSeconds('minor') * 1000).toFixed(0)} ms; event-loop delay p99 ${(value('arca_cp_nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(1)} ms, max ${(value('arca_cp_nodejs_eventloop_lag_max_seconds') * 1000).toFixed(1)} ms`;
}

async function enqueueJob(scratch: ScratchDatabase, orgId: string, storeRowId: string, agentId: string, jobId: string): Promise<void> {
  await scratch.owner.begin(async (tx) => {
    await tx`INSERT INTO jobs (org_id, id, kind, agent_id, store_id, spec, requested_by)
             VALUES (${orgId}, ${jobId}, 'check', ${agentId}, ${storeRowId}, ${tx.json({ readData: false })}, 'bench')`;
    await tx`INSERT INTO job_events (org_id, job_id, seq, kind, level, message, data)
             VALUES (${orgId}, ${jobId}, 1, 'queued', 'info', 'queued by bench:fleet', '{}'::jsonb)`;
    await tx`SELECT pg_notify('arca_jobs', ${`${orgId}:${agentId}`})`;
  });
}

await main();
