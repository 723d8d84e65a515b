/**
 * The managed agent's loop (`arca agent run`, apps/agent/src/daemon/agent-daemon.ts) against the
 * real thing: a real Postgres database, one `arca-control-plane serve`, the real key proxy, one
 * real `arca agent run` process and an fs store initialised by that agent. What it proves is what
 * an operator relies on (docs/fleet.md §4, §7):
 *
 * - a result survives a control-plane outage: it is spooled, sent when the control plane is back
 *   (same database, same port) and the job ends `succeeded` with its snapshot — not requeued;
 * - `cancelJob` stops a running backup and the job ends `cancelled`;
 * - when the control plane takes a job away (LEASE_LOST), the agent stops working on it and never
 *   reports a stale attempt's result over the new attempt — neither from a running job (its
 *   heartbeat is refused) nor from its spool (the completion is refused);
 * - `--concurrency 1`: two queued jobs run one after the other, never both at once;
 * - SIGTERM: a job that ends within `--grace-seconds` is reported as it ended, one that does not is
 *   cancelled and reported; either way the agent exits 0 and no job stays leased.
 *
 * Jobs are postgres backups whose pg_dump is a stand-in (ARCA_PG_DUMP, as in the runner tests):
 * it logs when it starts, ends or is terminated, writes some bytes, and then holds until the test
 * opens its gate (a file). That makes "a job is running" a state the test controls instead of a
 * race against the speed of the machine; everything else — leasing, heartbeats, store access
 * through the key proxy, backupStream, spooling, completion — is the product's own code.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { graphqlOk, runToEnd, ServiceProcess, waitFor } from './support/service-process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CONTROL_PLANE = path.join(ROOT, 'apps/control-plane/bin/arca-control-plane.ts');
const KEY_PROXY = path.join(ROOT, 'apps/key-proxy/bin/arca-key-proxy.ts');
const ARCA = path.join(ROOT, 'apps/agent/bin/arca.mjs');
const ISSUER = 'https://control-plane.resilience.e2e.test';
/** long enough that nothing in this file expires a lease by accident (LEASE_LOST is caused on purpose) */
const LEASE_SECONDS = 30;
const GRACE_SECONDS = 3;

interface JobEvent {
  seq: number;
  time: string;
  kind: string;
  message: string;
  data: Record<string, unknown> | null;
}

interface JobNode {
  id: string;
  kind: string;
  status: string;
  attempt: number;
  cancelRequested: boolean;
  spec: { postgres?: { database: string } };
  result: Record<string, unknown> | null;
  error: { code?: string; message?: string } | null;
  startedAt: string | null;
  finishedAt: string | null;
  events: JobEvent[];
}

const JOB_FIELDS = 'id kind status attempt cancelRequested spec result error startedAt finishedAt events { seq time kind message data }';
const FINAL = ['succeeded', 'partial', 'failed', 'cancelled'];

/** What the stand-in pg_dump of one database did, from its log: `<ms> started|finished|terminated`. */
interface DumpRun {
  started: number;
  finished?: number;
  terminated?: number;
}

/**
 * The stand-in pg_dump: the database name from --dbname= names its log and its gate; TERM (the
 * agent's cancel) is logged. GNU date's %3N gives milliseconds, on the test's own clock.
 */
function fakePgDump(gateDir: string): string {
  return `#!/bin/sh
db=
for a in "$@"; do case "$a" in --dbname=*) db="\${a#--dbname=}" ;; esac; done
d='${gateDir}'
trap 'echo "$(date +%s%3N) terminated" >> "$d/$db.log"; exit 143' TERM
echo "$(date +%s%3N) started" >> "$d/$db.log"
head -c 300000 /dev/urandom
while [ ! -e "$d/$db.go" ]; do sleep 0.05; done
head -c 100000 /dev/urandom
echo "$(date +%s%3N) finished" >> "$d/$db.log"
`;
}

describe('arca agent run: outages, cancellation, lost leases, concurrency and SIGTERM', () => {
  let tmp: string;
  let gateDir: string;
  let scratch: ScratchDatabase;
  let cpEnv: Record<string, string>;
  let controlPlane: ServiceProcess;
  let cpUrl: string;
  let keyProxy: ServiceProcess;
  let token: string;
  let dataDir: string;
  let agentId: string;
  let agent: ServiceProcess;
  /** the output of every run of the agent */
  const agentRuns: ServiceProcess[] = [];
  let storeRowId: string;
  let policyId: string;
  const resourceIds = new Map<string, string>();

  const gql = <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}) => graphqlOk<T>(cpUrl, token, query, variables);
  const job = async (id: string): Promise<JobNode> => (await gql<{ job: JobNode }>(`query($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }`, { id })).job;
  const jobIn = (id: string, statuses: string[], timeoutMs: number) =>
    waitFor(`job ${id} to be ${statuses.join('|')}`, async () => {
      const j = await job(id);
      return statuses.includes(j.status) ? j : undefined;
    }, timeoutMs, 100);
  const agentLog = () => agentRuns.map((a) => a.output).join('\n');
  /** the agent's JSON log lines about one job */
  const agentLines = (jobId: string): { msg: string; [k: string]: unknown }[] =>
    agentLog().split('\n').filter((l) => l.startsWith('{') && l.includes(jobId)).map((l) => JSON.parse(l) as { msg: string });
  const context = () => `\n--- agent ---\n${agentLog().slice(-6000)}\n--- control plane ---\n${controlPlane.output.slice(-3000)}`;

  const startControlPlane = async (port: number): Promise<void> => {
    controlPlane = ServiceProcess.spawn('control plane', [CONTROL_PLANE, 'serve'], { ...cpEnv, ARCA_CP_PORT: String(port) });
    cpUrl = await controlPlane.waitForOutput(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
  };
  const startAgent = async (): Promise<void> => {
    agent = ServiceProcess.spawn('agent', [ARCA, 'agent', 'run', '--data-dir', dataDir, '--concurrency', '1', '--grace-seconds', String(GRACE_SECONDS)], {
      ARCA_KEY_PROXY_ALLOW_HTTP: '1', ARCA_AGENT_JOB_HEARTBEAT_SECONDS: '1', ARCA_AGENT_BACKOFF_BASE_MS: '200', ARCA_AGENT_BACKOFF_MAX_MS: '1000',
      ARCA_PG_DUMP: path.join(tmp, 'pg_dump'),
    });
    agentRuns.push(agent);
    await agent.waitForOutput(/"msg":"agent started"/);
  };

  const dumpRuns = async (db: string): Promise<DumpRun[]> => {
    const text = await readFile(path.join(gateDir, `${db}.log`), 'utf8').catch(() => '');
    const runs: DumpRun[] = [];
    for (const line of text.split('\n').filter(Boolean)) {
      const [ms, what] = line.split(' ');
      if (what === 'started') runs.push({ started: Number(ms) });
      else if (runs.length > 0) runs.at(-1)![what as 'finished' | 'terminated'] = Number(ms);
    }
    return runs;
  };
  const dumpStarted = (db: string, run = 1) => waitFor(`pg_dump of ${db} to start (run ${run})`, async () => (await dumpRuns(db)).length >= run, 30_000, 50);
  const openGate = (db: string) => writeFile(path.join(gateDir, `${db}.go`), '');

  /** A postgres resource of this suite's policy whose "database" is `db`. */
  const resource = async (db: string): Promise<string> => {
    const r = await gql<{ createResource: { id: string } }>('mutation($input: CreateResourceInput!) { createResource(input: $input) { id } }', {
      input: { agentId, name: `pg-${db}`, kind: 'postgres', database: db, labels: [{ key: 'suite', value: 'resilience' }] },
    });
    resourceIds.set(db, r.createResource.id);
    return r.createResource.id;
  };
  /** Backs up `db` now (runPolicyNow for its resource): the new job's ID. */
  const backupNow = async (db: string): Promise<string> => {
    const r = await gql<{ runPolicyNow: { id: string }[] }>('mutation($p: ID!, $r: ID) { runPolicyNow(policyId: $p, resourceId: $r) { id } }', { p: policyId, r: resourceIds.get(db) ?? await resource(db) });
    expect(r.runPolicyNow).toHaveLength(1);
    return r.runPolicyNow[0]!.id;
  };
  const spooled = async (): Promise<string[]> => (await readdir(path.join(dataDir, 'spool')).catch(() => [])).filter((n) => n.endsWith('.json'));
  const catalogued = async (snapshotId: string): Promise<boolean> => {
    const r = await gql<{ snapshots: { edges: { node: { snapshotId: string } }[] } }>('query($f: SnapshotFilter) { snapshots(first: 100, filter: $f) { edges { node { snapshotId } } } }', { f: { storeId: storeRowId } });
    return r.snapshots.edges.some((e) => e.node.snapshotId === snapshotId);
  };
  const event = (j: JobNode, kind: string): JobEvent | undefined => j.events.find((e) => e.kind === kind);
  const eventTime = (j: JobNode, kind: string): number => {
    const e = event(j, kind);
    if (e == null) throw new Error(`job ${j.id} has no ${kind} event: ${JSON.stringify(j.events)}`);
    return Date.parse(e.time);
  };
  /** SIGTERM to the agent: its exit code and how long it took to exit. */
  const terminateAgent = async (): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> => {
    const exited = once(agent.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const t0 = Date.now();
    agent.child.kill('SIGTERM');
    const [code, signal] = await exited;
    return { code, signal, ms: Date.now() - t0 };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'arca-e2e-daemon-'));
    gateDir = path.join(tmp, 'gates');
    await mkdir(gateDir);
    await writeFile(path.join(tmp, 'pg_dump'), fakePgDump(gateDir), { mode: 0o755 });
    scratch = await createScratchDatabase();

    const secretsKeyFile = path.join(tmp, 'secrets.key');
    const signingKeyFile = path.join(tmp, 'job-signing-key.pem');
    await writeFile(secretsKeyFile, randomBytes(32), { mode: 0o600 });
    await writeFile(signingKeyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    cpEnv = {
      DATABASE_URL: scratch.appUrl, ARCA_CP_HOST: '127.0.0.1', ARCA_CP_LOG_LEVEL: 'info',
      ARCA_CP_SECRETS_KEY_FILE: secretsKeyFile, ARCA_CP_JOB_SIGNING_KEY_FILE: signingKeyFile, ARCA_CP_JOB_TOKEN_ISSUER: ISSUER,
      ARCA_CP_SCHEDULER_TICK_SECONDS: '1', ARCA_CP_JOB_LEASE_SECONDS: String(LEASE_SECONDS), ARCA_CP_LEASE_SWEEP_SECONDS: '1',
      ARCA_CP_LEASE_RECHECK_SECONDS: '0.5', ARCA_CP_JOB_RETRY_BACKOFF_SECONDS: '1', ARCA_CP_AGENT_HEARTBEAT_SECONDS: '1',
      ARCA_CP_AGENT_OFFLINE_SECONDS: '10', ARCA_CP_SHUTDOWN_TIMEOUT_MS: '2000',
    };
    const boot = await runToEnd(CONTROL_PLANE, ['bootstrap', '--org', 'Daemon E2E', '--email', 'owner@daemon.e2e.test', '--api-token'], { ...cpEnv, ARCA_CP_PORT: '0' });
    expect(boot.code, boot.stderr).toBe(0);
    token = /^(arca_pat_\S+)$/m.exec(boot.stdout)![1]!;
    // the first start picks a free port; restarts reuse it, as a restarted service would
    await startControlPlane(0);

    const kekFile = path.join(tmp, 'kek');
    const kek = await runToEnd(KEY_PROXY, ['kek', 'create-local', '--out', kekFile]);
    expect(kek.code, kek.stderr).toBe(0);
    keyProxy = ServiceProcess.spawn('key proxy', [KEY_PROXY, 'serve'], {
      ARCA_KP_LISTEN: '127.0.0.1:0', ARCA_KP_DATA_DIR: path.join(tmp, 'kp-data'), ARCA_KP_ISSUER: ISSUER,
      ARCA_KP_JWKS_URL: `${cpUrl}/.well-known/arca-jwks.json`, ARCA_KP_STRICT: 'false', ARCA_KP_PROVIDER: 'local', ARCA_KP_LOCAL_KEK_FILE: kekFile,
    });
    const keyProxyUrl = await keyProxy.waitForOutput(/"listening".*?"url":"(http:\/\/127\.0\.0\.1:\d+)"/);

    const enrollment = await gql<{ createEnrollmentToken: { token: string } }>('mutation { createEnrollmentToken(input: { name: "daemon-e2e", maxUses: 1, expiresInHours: 1 }) { token } }');
    dataDir = path.join(tmp, 'agent');
    const enrolled = await runToEnd(ARCA, ['agent', 'enroll', '--url', cpUrl, '--token', enrollment.createEnrollmentToken.token, '--data-dir', dataDir, '--json']);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    agentId = (JSON.parse(enrolled.stdout) as { agentId: string }).agentId;
    await startAgent();

    // the store is initialised by this agent through the key proxy (an init job)
    const store = await gql<{ createStore: { id: string } }>('mutation($input: CreateStoreInput!) { createStore(input: $input) { id } }', {
      input: { name: 'daemon-fs', kind: 'fs', url: path.join(tmp, 'store'), keyProxyUrl, initAgentId: agentId },
    });
    storeRowId = store.createStore.id;
    await waitFor('the store to be ready', async () => {
      const r = await gql<{ store: { status: string } }>('query($id: ID!) { store(id: $id) { status } }', { id: storeRowId });
      return r.store.status === 'ready' || (r.store.status === 'failed' ? Promise.reject(new Error(`store init failed${context()}`)) : undefined);
    }, 30_000);
    // no retention, copy store or restore tests: a backup has no follow-up jobs to get in the way
    const policy = await gql<{ createPolicy: { id: string } }>('mutation($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }', {
      input: { name: 'resilience', schedule: '0 3 1 1 *', rpoMinutes: 525600, storeId: storeRowId, selector: [{ key: 'suite', values: ['resilience'] }] },
    });
    policyId = policy.createPolicy.id;
  }, 90_000);

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await keyProxy?.stop();
    await controlPlane?.stop();
    await scratch?.drop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('--concurrency 1: two queued jobs run one after the other, never both at once', async () => {
    await resource('conc_a');
    await resource('conc_b');
    // one call queues both (the policy's two resources)
    const queued = await gql<{ runPolicyNow: { id: string }[] }>('mutation($p: ID!) { runPolicyNow(policyId: $p) { id } }', { p: policyId });
    expect(queued.runPolicyNow).toHaveLength(2);
    const ids = queued.runPolicyNow.map((j) => j.id);

    // whichever the agent took first holds its only slot: the other stays queued, never leased
    const first = await waitFor('one of the two jobs to run', async () => {
      for (const id of ids) if ((await job(id)).status === 'running') return id;
      return undefined;
    }, 30_000, 100);
    const second = ids.find((id) => id !== first)!;
    const firstDb = (await job(first)).spec.postgres!.database;
    const secondDb = (await job(second)).spec.postgres!.database;
    await dumpStarted(firstDb);
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const other = await job(second);
      expect(other.status, context()).toBe('queued');
      expect(event(other, 'leased')).toBeUndefined();
      expect(await dumpRuns(secondDb)).toEqual([]);
    }

    await openGate(firstDb);
    const a = await jobIn(first, FINAL, 30_000);
    expect(a.status, context()).toBe('succeeded');
    await dumpStarted(secondDb);
    await openGate(secondDb);
    const b = await jobIn(second, FINAL, 30_000);
    expect(b.status, context()).toBe('succeeded');

    // the record agrees: the second job was leased only after the first one's work had ended, and
    // the two pg_dumps never overlapped
    const [runA] = await dumpRuns(firstDb);
    const [runB] = await dumpRuns(secondDb);
    expect(runA!.finished).toBeDefined();
    expect(runB!.started).toBeGreaterThanOrEqual(runA!.finished!);
    expect(eventTime(b, 'leased')).toBeGreaterThanOrEqual(runA!.finished!);
    // and in the control plane's history the two jobs' active times do not overlap either: the
    // agent asks for its next job only once the control plane has recorded the end of this one
    expect(eventTime(b, 'leased'), JSON.stringify({ a: a.events, b: b.events })).toBeGreaterThanOrEqual(eventTime(a, 'completed'));
    expect(b.attempt).toBe(1);
    expect(a.attempt).toBe(1);
  }, 60_000);

  it('cancelJob stops a running backup: the agent stops pg_dump, the job ends cancelled, no snapshot is catalogued', async () => {
    const id = await backupNow('cancel_me');
    await dumpStarted('cancel_me');
    await jobIn(id, ['running'], 10_000);
    const asked = await gql<{ cancelJob: { status: string; cancelRequested: boolean } }>('mutation($id: ID!) { cancelJob(id: $id) { status cancelRequested } }', { id });
    expect(asked.cancelJob).toEqual({ status: 'running', cancelRequested: true });

    const done = await jobIn(id, FINAL, 15_000);
    expect(done.status, context()).toBe('cancelled');
    expect(done.result).toBeNull();
    expect(done.error).toBeNull();
    expect(done.finishedAt).not.toBeNull();
    expect(done.events.map((e) => e.kind)).toEqual(expect.arrayContaining(['cancel-requested', 'completed']));
    expect(event(done, 'completed')!.data).toMatchObject({ completedAttempt: 1, status: 'cancelled' });
    // the work stopped: pg_dump was terminated (the gate was never opened), nothing was catalogued
    await waitFor('pg_dump to be terminated', async () => (await dumpRuns('cancel_me'))[0]?.terminated !== undefined, 10_000, 50);
    expect((await dumpRuns('cancel_me'))[0]!.finished).toBeUndefined();
    const snaps = await gql<{ snapshots: { edges: unknown[] } }>('query($f: SnapshotFilter) { snapshots(first: 100, filter: $f) { edges { cursor } } }', { f: { resourceId: resourceIds.get('cancel_me') } });
    expect(snaps.snapshots.edges).toEqual([]);
    expect(agentLines(id).map((l) => l.msg)).toEqual(expect.arrayContaining(['job cancelled by the control plane', 'job finished', 'result delivered']));
    await waitFor('the spool to be empty', async () => (await spooled()).length === 0, 5_000, 50);
  }, 40_000);

  it('LEASE_LOST while running (a new attempt holds the job): the agent abandons it — stops pg_dump, reports nothing — and only the new attempt is recorded', async () => {
    const id = await backupNow('taken_away');
    await dumpStarted('taken_away');
    await jobIn(id, ['running'], 10_000);
    // the job now belongs to attempt 2 (as after a requeue and a new lease): it is still active for
    // this agent, so only the job heartbeat of attempt 1 can tell — and it is refused, 409 LEASE_LOST
    await scratch.owner`UPDATE jobs SET attempt = attempt + 1, updated_at = now() WHERE id = ${id}`;
    await waitFor('the agent to abandon the job', async () => agentLines(id).some((l) => l.msg.startsWith('job abandoned')), 10_000, 50);
    await waitFor('pg_dump to be terminated', async () => (await dumpRuns('taken_away'))[0]?.terminated !== undefined, 10_000, 50);
    // ... and reports nothing: a few heartbeats later attempt 2 is untouched and nothing is spooled
    await new Promise((r) => setTimeout(r, 2000));
    const held = await job(id);
    expect(held.attempt, context()).toBe(2);
    expect(event(held, 'completed')).toBeUndefined();
    expect(await spooled()).toEqual([]);
    const lines = agentLines(id).map((l) => l.msg);
    for (const never of ['job finished', 'result delivered', 'result refused for good and dropped']) expect(lines).not.toContain(never);

    // attempt 2 runs (queued again for this test to hand it out) and is the only one recorded
    await openGate('taken_away');
    await scratch.owner`UPDATE jobs SET status = 'queued', lease_expires_at = NULL, run_after = now(), updated_at = now() WHERE id = ${id}`;
    const done = await jobIn(id, FINAL, 20_000);
    expect(done.status, context()).toBe('succeeded');
    expect(done.attempt).toBe(2);
    expect(done.events.filter((e) => e.kind === 'completed').map((e) => e.data?.completedAttempt)).toEqual([2]);
    expect((await dumpRuns('taken_away')).map((r) => [r.finished !== undefined, r.terminated !== undefined])).toEqual([[false, true], [true, false]]);
  }, 60_000);

  it('a running job requeued by the control plane: the agent stops it and its stale result is never recorded over the new attempt', async () => {
    const id = await backupNow('requeued');
    await dumpStarted('requeued');
    await jobIn(id, ['running'], 10_000);
    // what the lease sweeper does (attempt + 1, back to the queue); run_after far ahead so the new
    // attempt waits until the test lets it run
    await scratch.owner`UPDATE jobs SET status = 'queued', attempt = attempt + 1, lease_expires_at = NULL, run_after = now() + interval '1 hour', updated_at = now() WHERE id = ${id}`;
    // Two documented ways to learn it, whichever comes first: the job heartbeat is refused
    // (LEASE_LOST: abandoned, nothing sent), or the agent heartbeat lists it in cancelJobs (a job
    // no longer active there: stopped, and its completion of attempt 1 refused with LEASE_LOST)
    const how = await waitFor('the agent to drop the job', async () => {
      const lines = agentLines(id);
      if (lines.some((l) => l.msg.startsWith('job abandoned'))) return 'abandoned';
      const refused = lines.find((l) => l.msg === 'result refused for good and dropped');
      return refused != null ? `refused ${String(refused.code)}` : undefined;
    }, 10_000, 50);
    expect(['abandoned', 'refused LEASE_LOST']).toContain(how);
    await waitFor('pg_dump to be terminated', async () => (await dumpRuns('requeued'))[0]?.terminated !== undefined, 10_000, 50);
    await new Promise((r) => setTimeout(r, 2000));
    const waiting = await job(id);
    expect(waiting, context()).toMatchObject({ status: 'queued', attempt: 2, result: null, error: null });
    expect(event(waiting, 'completed')).toBeUndefined();
    expect(await spooled()).toEqual([]);
    expect(agentLines(id).map((l) => l.msg)).not.toContain('result delivered');

    await openGate('requeued');
    await scratch.owner`UPDATE jobs SET run_after = now() WHERE id = ${id}`;
    const done = await jobIn(id, FINAL, 20_000);
    expect(done.status, context()).toBe('succeeded');
    expect(done.attempt).toBe(2);
    expect(done.events.filter((e) => e.kind === 'completed').map((e) => e.data?.completedAttempt)).toEqual([2]);
  }, 60_000);

  it('a result survives a control-plane outage: spooled while it is down, delivered when it is back, the job succeeds with it (not requeued)', async () => {
    const port = Number(new URL(cpUrl).port);
    const id = await backupNow('outage');
    await dumpStarted('outage');
    await jobIn(id, ['running'], 10_000);

    await controlPlane.stop();
    // the job ends while nobody can hear it: the result waits in DIR/spool
    await openGate('outage');
    const file = await waitFor('the result to be spooled', async () => (await spooled()).find((n) => n === `${id}.json`), 20_000, 50);
    const spool = JSON.parse(await readFile(path.join(dataDir, 'spool', file), 'utf8')) as { jobId: string; request: { attempt: number; outcome: string; result: { snapshotId: string }; snapshots: { snapshotId: string }[] } };
    expect(spool).toMatchObject({ jobId: id, request: { attempt: 1, outcome: 'succeeded' } });
    const snapshotId = spool.request.result.snapshotId;
    expect(spool.request.snapshots.map((m) => m.snapshotId)).toEqual([snapshotId]);
    await waitFor('a failed delivery', async () => agentLines(id).some((l) => l.msg === 'result not delivered; retrying'), 10_000, 50);
    expect(agent.running).toBe(true);

    // back, on the same database and port
    await startControlPlane(port);
    const done = await jobIn(id, FINAL, 20_000);
    expect(done.status, context()).toBe('succeeded');
    expect(done.attempt).toBe(1);
    expect(done.result).toMatchObject({ snapshotId });
    expect(done.events.map((e) => e.kind)).not.toContain('requeued');
    expect(event(done, 'completed')!.data).toMatchObject({ completedAttempt: 1, status: 'succeeded' });
    expect(await catalogued(snapshotId)).toBe(true);
    await waitFor('the spool to be empty', async () => (await spooled()).length === 0, 5_000, 50);
    expect((await dumpRuns('outage')).length).toBe(1);
  }, 60_000);

  it('LEASE_LOST for a spooled result: a stale attempt\'s result is refused when the control plane is back, dropped, and never recorded over the new attempt', async () => {
    const port = Number(new URL(cpUrl).port);
    const id = await backupNow('stale_spool');
    await dumpStarted('stale_spool');
    await jobIn(id, ['running'], 10_000);
    await controlPlane.stop();
    await openGate('stale_spool');
    await waitFor('the result to be spooled', async () => (await spooled()).includes(`${id}.json`), 20_000, 50);
    // while it was away the job was given to a new attempt
    await scratch.owner`UPDATE jobs SET status = 'queued', attempt = attempt + 1, lease_expires_at = NULL, run_after = now() + interval '1 hour', updated_at = now() WHERE id = ${id}`;
    await startControlPlane(port);

    await waitFor('the stale result to be refused', async () => agentLines(id).find((l) => l.msg === 'result refused for good and dropped'), 20_000, 100);
    expect(agentLines(id).find((l) => l.msg === 'result refused for good and dropped')).toMatchObject({ code: 'LEASE_LOST' });
    expect(await spooled()).toEqual([]);
    const waiting = await job(id);
    expect(waiting).toMatchObject({ status: 'queued', attempt: 2, result: null });
    expect(event(waiting, 'completed')).toBeUndefined();

    await scratch.owner`UPDATE jobs SET run_after = now() WHERE id = ${id}`;
    const done = await jobIn(id, FINAL, 20_000);
    expect(done.status, context()).toBe('succeeded');
    expect(done.attempt).toBe(2);
    expect(done.events.filter((e) => e.kind === 'completed').map((e) => e.data?.completedAttempt)).toEqual([2]);
  }, 60_000);

  it('SIGTERM: a job that ends within --grace-seconds is reported as it ended, and the agent exits 0', async () => {
    const id = await backupNow('grace_ok');
    await dumpStarted('grace_ok');
    await jobIn(id, ['running'], 10_000);
    const exit = terminateAgent();
    await agent.waitForOutput(/"msg":"stopping"/);
    // still at work: the job is not cancelled at the signal
    await new Promise((r) => setTimeout(r, 1000));
    expect(agent.running).toBe(true);
    expect((await job(id)).status).toBe('running');
    await openGate('grace_ok');
    const { code, signal, ms } = await exit;
    expect({ code, signal }, context()).toEqual({ code: 0, signal: null });
    expect(ms).toBeLessThan((GRACE_SECONDS + 5) * 1000);
    const done = await job(id);
    expect(done.status, context()).toBe('succeeded');
    expect(done.attempt).toBe(1);
    expect(await spooled()).toEqual([]);
    expect(agent.output).toMatch(/"msg":"agent stopped","spooled":0/);
  }, 40_000);

  it('SIGTERM: a job still running when --grace-seconds are over is cancelled and reported; the agent exits 0 and the job is not left leased', async () => {
    await startAgent();
    const id = await backupNow('grace_over');
    await dumpStarted('grace_over');
    await jobIn(id, ['running'], 10_000);
    const { code, signal, ms } = await terminateAgent();
    expect({ code, signal }, context()).toEqual({ code: 0, signal: null });
    // it waited the grace period, then stopped the job and reported it (a few seconds at most)
    expect(ms).toBeGreaterThanOrEqual(GRACE_SECONDS * 1000);
    expect(ms).toBeLessThan((GRACE_SECONDS + 5) * 1000);
    const done = await job(id);
    expect(done.status, context()).toBe('cancelled');
    expect(done.finishedAt).not.toBeNull();
    expect(event(done, 'completed')!.data).toMatchObject({ completedAttempt: 1, status: 'cancelled' });
    expect((await dumpRuns('grace_over'))[0]!.terminated).toBeDefined();
    expect(agentLines(id).map((l) => l.msg)).toEqual(expect.arrayContaining(['job cancelled: the agent is stopping', 'result delivered']));
    expect(await spooled()).toEqual([]);
  }, 40_000);
});
