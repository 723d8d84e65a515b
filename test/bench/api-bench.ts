/**
 * `npm run bench:api`: authenticated GraphQL reads and audited mutations against the control plane.
 *
 * Creates a fresh Postgres database on the local server (ARCA_TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres) with a login role that is only a member of
 * arca_app (as production connects), migrates it, and seeds 100 organizations, each with its
 * built-in roles, an owner, the owner's API token and 10,000 audit events. The events are
 * written in bulk (COPY) but hashed by the application's own chain function and linked to the
 * chain head, so `verifyAuditChain` passes (checked at the end on one organization).
 *
 * Then starts `arca-control-plane serve` as a child process (default settings: info logs, pool of
 * 10; NODE_ENV=production, as deployed) and drives it over keep-alive HTTP/1.1 on loopback with a
 * fixed number of requests in flight (one connection each), each request using a random
 * organization's token:
 * - reads: `organization` + the 10 newest audit events (two tenant queries after authentication);
 * - audited mutations: `updateOrganization` (row update + hash-chain append in one transaction).
 * Reports requests/s, p50/p99 latency, CPU in cores (from /proc: the control plane, this load
 * generator, the whole machine — Postgres is most of the rest) and the control plane's peak RSS.
 *
 * The load generator runs on the same 2 cores as the control plane and Postgres: the figures are
 * for the whole machine, not for the service alone. It is a minimal HTTP/1.1 client over
 * `node:net` (pre-built requests, responses framed by content-length — like autocannon), so that
 * it takes as little of the machine as possible (BENCH_CLIENT=node-http uses node:http's client
 * instead, as milestone 2 did).
 *
 * Env: BENCH_SECONDS (per phase, default 10), BENCH_CONCURRENCY (default 16), BENCH_ORGS (default
 * 100), BENCH_EVENTS (per organization, default 10000), BENCH_CP_NODE_ARGS (extra node flags for
 * the control plane, e.g. "--cpu-prof --cpu-prof-dir=/tmp/cp-prof"), BENCH_CP_ENV (extra
 * "KEY=value,KEY=value" settings for it, e.g. NODE_ENV=development), BENCH_CLIENT (node-http).
 * Targets: >= 1,500 reads/s with p99 < 50 ms; >= 500 audited mutations/s with p99 < 100 ms.
 */
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent, request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { auditEntryHash, GENESIS_HASH } from '../../apps/control-plane/src/audit/audit-hash.ts';
import { BenchConnection, postRequest } from './support/bench-connection.ts';
import { insertBenchOrganization, startBenchControlPlane, type BenchControlPlane } from './support/bench-control-plane.ts';
import { cpuSeconds, machineBusySeconds, peakRssMiB, percentile } from './support/process-stats.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ORGS = Number(process.env.BENCH_ORGS ?? 100);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
/** BENCH_CLIENT=node-http: the load generator of milestone 2 (node:http's client), for comparison */
const NODE_HTTP_CLIENT = process.env.BENCH_CLIENT === 'node-http';
const TARGETS = { read: { rps: 1500, p99Ms: 50 }, mutation: { rps: 500, p99Ms: 100 } };

const READ_QUERY = JSON.stringify({ query: '{ organization { id name } auditEvents(first: 10) { edges { node { seq time actor action target } } } }' });
const mutationBody = (n: number) => JSON.stringify({ query: 'mutation($n: String!) { updateOrganization(input: { name: $n }) { id updatedAt } }', variables: { n: `bench org ${n}` } });

interface Org {
  id: string;
  token: string;
}

interface PhaseResult {
  name: 'read' | 'mutation';
  requests: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  cpuCores: number;
  /** this load generator's CPU */
  loadCores: number;
  /** the whole machine's busy CPU (control plane + Postgres + load generator + anything else) */
  machineCores: number;
}

/** COPY text format: tabs, newlines and backslashes escaped; NULL is \N. */
function copyField(value: string | null): string {
  return value == null ? '\\N' : value.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}

const ACTIONS = ['user.created', 'role.created', 'api_token.created', 'auth.token_used', 'authz.denied', 'key-proxy.keys'];

async function seed(scratch: ScratchDatabase): Promise<Org[]> {
  const sql = scratch.owner;
  const orgs: Org[] = [];
  const started = performance.now();
  for (let i = 0; i < ORGS; i++) {
    const orgId = randomUUID();
    const userId = randomUUID();
    const tokenId = randomUUID();
    const token = await sql.begin((tx) => insertBenchOrganization(tx, { orgId, userId, tokenId }, { organization: `bench org ${i}`, email: `owner@org${i}.bench`, displayName: `Owner ${i}` }));
    // the chain, hashed exactly as the application appends it
    let prevHash = GENESIS_HASH;
    const t0 = Date.now() - EVENTS * 1000;
    const lines: string[] = [];
    for (let seq = 1; seq <= EVENTS; seq++) {
      const entry = {
        orgId, seq, time: new Date(t0 + seq * 1000), actor: `user:${userId}`, action: ACTIONS[seq % ACTIONS.length]!,
        target: `role:${randomUUID()}`, payload: { name: `item-${seq}`, n: seq, auth: { method: 'api-token', tokenId } }, requestId: `seed-${seq}`, source: null,
      };
      const hash = auditEntryHash(prevHash, entry);
      lines.push([orgId, String(seq), entry.time.toISOString(), entry.actor, entry.action, entry.target, JSON.stringify(entry.payload), entry.requestId, null, prevHash, hash].map(copyField).join('\t'));
      prevHash = hash;
    }
    const copy = await sql`COPY audit_events (org_id, seq, time, actor, action, target, payload, request_id, source, prev_hash, hash) FROM STDIN`.writable();
    await pipeline(Readable.from([`${lines.join('\n')}\n`]), copy);
    await sql`INSERT INTO audit_chain_heads (org_id, seq, hash) VALUES (${orgId}, ${EVENTS}, ${prevHash})`;
    orgs.push({ id: orgId, token });
    if ((i + 1) % 20 === 0) process.stdout.write(`  seeded ${i + 1}/${ORGS} organizations (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  }
  // Settle the database before anything is measured: VACUUM now, or autovacuum's insert-triggered
  // vacuum of the million new audit rows runs during the phases (seen taking about a core); and
  // seeding wrote ~0.5 GB of WAL, whose checkpoint would otherwise spread its writes over the next
  // ~40 s and end with an fsync that stalls every COMMIT (seen: a ~1 s stall, mutations p99 2 s).
  await sql`VACUUM (ANALYZE)`;
  await sql`CHECKPOINT`;
  return orgs;
}

/** A POST /graphql request, ready to write. */
function graphqlRequest(url: URL, token: string, body: string): Buffer {
  return postRequest(url, { authorization: `Bearer ${token}` }, body);
}

function post(agent: HttpAgent, url: URL, token: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST', agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function phase(name: PhaseResult['name'], base: string, pid: number, orgs: Org[], seconds: number): Promise<PhaseResult> {
  const url = new URL('/graphql', base);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: CONCURRENCY });
  const connections = Array.from({ length: CONCURRENCY }, () => new BenchConnection(url));
  const send = NODE_HTTP_CLIENT
    ? (connection: BenchConnection, i: number, body: string) => post(agent, url, orgs[i]!.token, body)
    : (connection: BenchConnection, i: number, body: string) => connection.request(body === READ_QUERY ? reads[i]! : graphqlRequest(url, orgs[i]!.token, body));
  const reads = orgs.map((org) => graphqlRequest(url, org.token, READ_QUERY));
  const latencies: number[] = [];
  let requests = 0;
  let errors = 0;
  let n = 0;
  const cpuBefore = cpuSeconds(pid);
  const selfBefore = process.cpuUsage();
  const machineBefore = machineBusySeconds();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(connections.map(async (connection) => {
    while (performance.now() < deadline) {
      const i = Math.floor(Math.random() * orgs.length);
      const body = name === 'read' ? READ_QUERY : mutationBody(n++);
      const t0 = performance.now();
      const r = await send(connection, i, body);
      latencies.push(performance.now() - t0);
      if (r.status === 200 && !r.text.includes('"errors"')) requests++;
      else if (errors++ === 0) console.error(`  unexpected ${r.status}: ${r.text.slice(0, 300)}`);
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  const cpuCores = (cpuSeconds(pid) - cpuBefore) / elapsed;
  const self = process.cpuUsage(selfBefore);
  const loadCores = (self.user + self.system) / 1e6 / elapsed;
  const machineCores = (machineBusySeconds() - machineBefore) / elapsed;
  for (const connection of connections) connection.close();
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { name, requests, errors, seconds: elapsed, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), cpuCores, loadCores, machineCores };
}

async function main(): Promise<void> {
  console.log(`bench:api — ${ORGS} organizations x ${EVENTS} audit events, ${CONCURRENCY} requests in flight, ${SECONDS} s per phase`);
  const scratch = await createScratchDatabase();
  let cp: BenchControlPlane | undefined;
  try {
    const seedStart = performance.now();
    const orgs = await seed(scratch);
    console.log(`seeded in ${((performance.now() - seedStart) / 1000).toFixed(1)} s (database ${scratch.name})`);
    const started = await startBenchControlPlane(scratch);
    cp = started;
    const pid = started.child.pid!;
    // warm-up: JIT, connection pool, caches — not measured
    await phase('read', started.url, pid, orgs, 2);
    await phase('mutation', started.url, pid, orgs, 1);
    const results = [await phase('read', started.url, pid, orgs, SECONDS), await phase('mutation', started.url, pid, orgs, SECONDS)];
    const rss = peakRssMiB(pid);

    const verify = await post(new HttpAgent(), new URL('/graphql', started.url), orgs[0]!.token, JSON.stringify({ query: '{ verifyAuditChain { valid checkedEvents message } }' }));
    const verification = (JSON.parse(verify.text) as { data?: { verifyAuditChain: { valid: boolean; checkedEvents: number } } }).data?.verifyAuditChain;

    console.log('\n| workload | requests/s | p50 ms | p99 ms | errors | CPU cores: control plane / load generator / machine | target | met |');
    console.log('|---|---:|---:|---:|---:|---:|---|---|');
    let allMet = true;
    for (const r of results) {
      const target = TARGETS[r.name];
      const rps = r.requests / r.seconds;
      const met = rps >= target.rps && r.p99Ms < target.p99Ms && r.errors === 0;
      allMet &&= met;
      const label = r.name === 'read' ? 'GraphQL reads' : 'audited mutations';
      console.log(`| ${label} | ${rps.toFixed(0)} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.errors} | ${r.cpuCores.toFixed(2)} / ${r.loadCores.toFixed(2)} / ${r.machineCores.toFixed(2)} | >= ${target.rps}/s, p99 < ${target.p99Ms} ms | ${met ? 'yes' : 'NO'} |`);
    }
    console.log(`\ncontrol plane peak RSS: ${rss.toFixed(0)} MiB; audit chain of one organization after the run: ${verification?.valid === true ? `valid (${verification.checkedEvents} entries)` : `NOT valid: ${verify.text.slice(0, 300)}`}`);
    if (!allMet || verification?.valid !== true) process.exitCode = 1;
  } finally {
    await cp?.stop();
    await scratch.drop();
  }
}

await main();
