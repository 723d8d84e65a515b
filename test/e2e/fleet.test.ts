/**
 * The whole fleet, as separate processes on real components (issue 5): a real Postgres database,
 * two `arca-control-plane serve` replicas on it, the real key proxy (local KEK, verifying job tokens
 * against the control plane's JWKS URL, pushing its issuance audit to the control plane), three
 * `arca agent run` daemons, and two managed stores — one on an s3rver, one on the file system.
 *
 * The story a CISO asks for: agents enroll; the stores are initialised by an agent through the key
 * proxy; a policy with a 1-minute schedule backs up on its own and replicates to the copy store;
 * an agent killed in the middle of a backup gets the job back and completes it; a file is restored
 * to another machine byte-identical; a restore test proves the backup readable; and neither the
 * database nor any control-plane log ever held key material or a store credential.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentIdentityFromPem, issueJobToken } from '@arca/crypto';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { RemoteKeyProvider } from '@arca/engine';
import { startS3rver, type S3rverServer } from '@arca/test-support';
import { graphqlOk, runToEnd, ServiceProcess, waitFor } from './support/service-process.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CONTROL_PLANE = path.join(ROOT, 'apps/control-plane/bin/arca-control-plane.ts');
const KEY_PROXY = path.join(ROOT, 'apps/key-proxy/bin/arca-key-proxy.ts');
const ARCA = path.join(ROOT, 'apps/agent/bin/arca.mjs');
const ISSUER = 'https://control-plane.e2e.test';
const LEASE_SECONDS = 6;

interface Agent {
  name: string;
  dataDir: string;
  agentId: string;
  process: ServiceProcess | null;
  /** every output of every run of this agent */
  logs: string[];
}

interface JobNode {
  id: string;
  kind: string;
  status: string;
  attempt: number;
  agentId: string;
  scheduledFor: string | null;
  result: Record<string, unknown> | null;
  error: { code?: string; message?: string } | null;
  events: { kind: string; message: string }[];
}

const JOB_FIELDS = 'id kind status attempt agentId scheduledFor result error events { kind message }';

describe('fleet end to end: two control planes, the key proxy, three agents, s3 and fs stores', () => {
  let tmp: string;
  let scratch: ScratchDatabase;
  let s3: S3rverServer;
  let signingKeyFile: string;
  const controlPlanes: ServiceProcess[] = [];
  const cpUrls: string[] = [];
  let keyProxy: ServiceProcess;
  let keyProxyUrl: string;
  let kekFile: string;
  let token: string;
  let enrollmentToken: string;
  const agents: Agent[] = [];
  const stores = { s3: { id: '', storeId: '' }, fs: { id: '', storeId: '', dir: '' } };
  let sourceA: string;
  let goldPolicyId: string;
  let goldSnapshotId: string;

  const gql = <T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}, replica = 0) => graphqlOk<T>(cpUrls[replica]!, token, query, variables);
  const jobs = async (filter: Record<string, unknown>): Promise<JobNode[]> =>
    (await gql<{ jobs: { edges: { node: JobNode }[] } }>(`query($f: JobFilter) { jobs(first: 25, filter: $f) { edges { node { ${JOB_FIELDS} } } } }`, { f: filter })).jobs.edges.map((e) => e.node);
  const job = async (id: string): Promise<JobNode> => (await gql<{ job: JobNode }>(`query($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }`, { id })).job;
  const finished = (id: string, timeoutMs: number) =>
    waitFor(`job ${id} to finish`, async () => {
      const j = await job(id);
      return ['succeeded', 'partial', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
    }, timeoutMs, 300);

  const startAgent = (agent: Agent): void => {
    agent.process = ServiceProcess.spawn(`agent ${agent.name}`, [ARCA, 'agent', 'run', '--data-dir', agent.dataDir, '--concurrency', '2', '--grace-seconds', '5'], {
      ARCA_KEY_PROXY_ALLOW_HTTP: '1', ARCA_AGENT_JOB_HEARTBEAT_SECONDS: '1', ARCA_AGENT_BACKOFF_BASE_MS: '200', ARCA_AGENT_BACKOFF_MAX_MS: '2000',
    });
    agent.logs.push('');
    const index = agent.logs.length - 1;
    const keep = (d: Buffer) => (agent.logs[index] += d.toString());
    agent.process.child.stdout?.on('data', keep);
    agent.process.child.stderr?.on('data', keep);
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'arca-e2e-fleet-'));
    scratch = await createScratchDatabase();
    s3 = await startS3rver({ bucket: 'fleet' });

    // the control plane's fleet keys, shared by both replicas (docs/control-plane.md "Fleet keys")
    const secretsKeyFile = path.join(tmp, 'secrets.key');
    signingKeyFile = path.join(tmp, 'job-signing-key.pem');
    await writeFile(secretsKeyFile, randomBytes(32), { mode: 0o600 });
    await writeFile(signingKeyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const auditToken = randomBytes(32).toString('base64url');
    const auditTokenFile = path.join(tmp, 'kp-audit-token');
    await writeFile(auditTokenFile, auditToken, { mode: 0o600 });

    const cpEnv = {
      DATABASE_URL: scratch.appUrl, ARCA_CP_HOST: '127.0.0.1', ARCA_CP_PORT: '0', ARCA_CP_LOG_LEVEL: 'info',
      ARCA_CP_SECRETS_KEY_FILE: secretsKeyFile, ARCA_CP_JOB_SIGNING_KEY_FILE: signingKeyFile, ARCA_CP_JOB_TOKEN_ISSUER: ISSUER,
      ARCA_CP_SCHEDULER_TICK_SECONDS: '1', ARCA_CP_JOB_LEASE_SECONDS: String(LEASE_SECONDS), ARCA_CP_LEASE_SWEEP_SECONDS: '1',
      ARCA_CP_JOB_RETRY_BACKOFF_SECONDS: '1', ARCA_CP_AGENT_HEARTBEAT_SECONDS: '2', ARCA_CP_AGENT_OFFLINE_SECONDS: '10',
      ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256: createHash('sha256').update(auditToken).digest('hex'),
    };
    const boot = await runToEnd(CONTROL_PLANE, ['bootstrap', '--org', 'Fleet E2E', '--email', 'owner@fleet.e2e.test', '--api-token'], cpEnv);
    expect(boot.code, boot.stderr).toBe(0);
    token = /^(arca_pat_\S+)$/m.exec(boot.stdout)![1]!;

    for (const name of ['cp-1', 'cp-2']) {
      const cp = ServiceProcess.spawn(name, [CONTROL_PLANE, 'serve'], cpEnv);
      controlPlanes.push(cp);
      cpUrls.push(await cp.waitForOutput(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/));
    }

    kekFile = path.join(tmp, 'kek');
    const kek = await runToEnd(KEY_PROXY, ['kek', 'create-local', '--out', kekFile]);
    expect(kek.code, kek.stderr).toBe(0);
    keyProxy = ServiceProcess.spawn('key proxy', [KEY_PROXY, 'serve'], {
      ARCA_KP_LISTEN: '127.0.0.1:0', ARCA_KP_DATA_DIR: path.join(tmp, 'kp-data'), ARCA_KP_ISSUER: ISSUER,
      ARCA_KP_JWKS_URL: `${cpUrls[0]}/.well-known/arca-jwks.json`, ARCA_KP_STRICT: 'false', ARCA_KP_PROVIDER: 'local',
      ARCA_KP_LOCAL_KEK_FILE: kekFile, ARCA_KP_AUDIT_URL: `${cpUrls[1]}/v1/audit/key-proxy-events`, ARCA_KP_AUDIT_TOKEN_FILE: auditTokenFile,
    });
    keyProxyUrl = await keyProxy.waitForOutput(/"listening".*?"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await a.process?.stop('SIGKILL');
    await keyProxy?.stop();
    for (const cp of controlPlanes) await cp.stop();
    await s3?.stop();
    await scratch?.drop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('three agents enroll with one enrollment token and come online on both replicas', async () => {
    const created = await gql<{ createEnrollmentToken: { token: string } }>(
      'mutation { createEnrollmentToken(input: { name: "e2e", maxUses: 3, expiresInHours: 1, labels: [{ key: "site", value: "lab" }] }) { token } }',
    );
    enrollmentToken = created.createEnrollmentToken.token;
    for (const [i, name] of ['alpha', 'bravo', 'charlie'].entries()) {
      const dataDir = path.join(tmp, `agent-${name}`);
      // alpha and bravo talk to replica 1, charlie to replica 2: jobs queued through one replica are leased through the other
      const url = cpUrls[i === 2 ? 1 : 0]!;
      const enrolled = await runToEnd(ARCA, ['agent', 'enroll', '--url', url, '--token', enrollmentToken, '--data-dir', dataDir, '--label', `name=${name}`, '--json']);
      expect(enrolled.code, enrolled.stderr).toBe(0);
      expect(enrolled.stdout + enrolled.stderr).not.toContain(enrollmentToken);
      const agent: Agent = { name, dataDir, agentId: (JSON.parse(enrolled.stdout) as { agentId: string }).agentId, process: null, logs: [] };
      agents.push(agent);
      startAgent(agent);
    }
    // a fourth enrollment with the used-up token is refused, with a hint
    const fourth = await runToEnd(ARCA, ['agent', 'enroll', '--url', cpUrls[0]!, '--token', enrollmentToken, '--data-dir', path.join(tmp, 'agent-delta')]);
    expect(fourth.code).not.toBe(0);
    expect(fourth.stderr).toMatch(/enrollment token was refused/);

    for (const replica of [0, 1]) {
      const online = await waitFor('three agents online', async () => {
        const r = await gql<{ agents: { edges: { node: { id: string; online: boolean; hostname: string; labels: { key: string; value: string }[] } }[] } }>(
          '{ agents(first: 10) { edges { node { id online hostname labels { key value } } } } }', {}, replica);
        const nodes = r.agents.edges.map((e) => e.node);
        return nodes.length === 3 && nodes.every((n) => n.online) ? nodes : undefined;
      }, 30_000);
      expect(new Set(online.map((n) => n.id))).toEqual(new Set(agents.map((a) => a.agentId)));
      expect(online.every((n) => n.hostname === os.hostname() && n.labels.some((l) => l.key === 'site' && l.value === 'lab'))).toBe(true);
    }
  }, 90_000);

  it('an s3 store and an fs store are initialised by an agent through the key proxy', async () => {
    const [alpha] = agents;
    stores.fs.dir = path.join(tmp, 'fs-store');
    const s3Store = await gql<{ createStore: { id: string; storeId: string; status: string; hasCredentials: boolean } }>(
      `mutation($input: CreateStoreInput!) { createStore(input: $input) { id storeId status hasCredentials } }`,
      { input: { name: 'primary-s3', kind: 's3', url: `s3://${s3.bucket}/arca`, keyProxyUrl, initAgentId: alpha!.agentId,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, region: 'us-east-1', endpoint: s3.endpoint } } },
    );
    expect(s3Store.createStore).toMatchObject({ status: 'initializing', hasCredentials: true });
    const fsStore = await gql<{ createStore: { id: string; storeId: string } }>(
      `mutation($input: CreateStoreInput!) { createStore(input: $input) { id storeId status } }`,
      { input: { name: 'copy-fs', kind: 'fs', url: stores.fs.dir, keyProxyUrl, initAgentId: alpha!.agentId } },
    );
    Object.assign(stores.s3, s3Store.createStore);
    Object.assign(stores.fs, fsStore.createStore);
    for (const id of [stores.s3.id, stores.fs.id]) {
      const status = await waitFor('store ready', async () => {
        const r = await gql<{ store: { status: string } }>('query($id: ID!) { store(id: $id) { status } }', { id });
        return r.store.status !== 'initializing' ? r.store.status : undefined;
      }, 60_000);
      expect(status).toBe('ready');
    }
    // the fs store now holds a managed config (the key proxy's envelope, never a key)
    const config = await readFile(path.join(stores.fs.dir, 'config'));
    expect(config.length).toBeGreaterThan(0);
  }, 90_000);

  it('a policy with a 1-minute schedule backs up on its own, replicates to the copy store and passes a restore test', async () => {
    const [alpha] = agents;
    sourceA = path.join(tmp, 'src-alpha');
    await mkdir(path.join(sourceA, 'docs/deep'), { recursive: true });
    await writeFile(path.join(sourceA, 'docs/report.txt'), 'quarterly numbers\n'.repeat(5000));
    await writeFile(path.join(sourceA, 'docs/deep/data.bin'), randomBytes(2_000_000));
    await writeFile(path.join(sourceA, 'empty'), '');
    await gql(`mutation($input: CreateResourceInput!) { createResource(input: $input) { id } }`, {
      input: { agentId: alpha!.agentId, name: 'alpha-home', kind: 'path', paths: [sourceA], labels: [{ key: 'tier', value: 'gold' }] },
    });
    const policy = await gql<{ createPolicy: { id: string; nextRunAt: string } }>(`mutation($input: CreatePolicyInput!) { createPolicy(input: $input) { id nextRunAt } }`, {
      input: { name: 'gold', schedule: '* * * * *', timezone: 'Europe/Berlin', rpoMinutes: 5, retention: { keepLast: 5 }, storeId: stores.s3.id, copyStoreId: stores.fs.id,
        restoreTestEveryDays: 1, selector: [{ key: 'tier', values: ['gold'] }] },
    });
    goldPolicyId = policy.createPolicy.id;

    // nobody asks: the scheduler (on either replica) queues the backup at the next minute
    const scheduled = await waitFor('a scheduled backup to succeed', async () => {
      const list = await jobs({ kinds: ['backup'], policyId: goldPolicyId });
      return list.find((j) => j.scheduledFor != null && j.status === 'succeeded');
    }, 150_000, 1000);
    expect(scheduled.agentId).toBe(alpha!.agentId);
    // exactly one job per slot although two schedulers run
    const slots = (await jobs({ kinds: ['backup'], policyId: goldPolicyId })).filter((j) => j.scheduledFor != null).map((j) => j.scheduledFor);
    expect(new Set(slots).size).toBe(slots.length);

    const followUps = await waitFor('replicate and restore-test to finish', async () => {
      const list = await jobs({ kinds: ['replicate', 'restore-test'] });
      const done = (kind: string) => list.find((j) => j.kind === kind && ['succeeded', 'failed', 'partial'].includes(j.status));
      return done('replicate') && done('restore-test') ? { replicate: done('replicate')!, restoreTest: done('restore-test')! } : undefined;
    }, 90_000, 500);
    const agentLog = () => agents.flatMap((a) => a.logs).join('\n').split('\n').filter((l) => /warn|error/.test(l)).slice(-30).join('\n');
    expect(followUps.replicate.status, `${JSON.stringify(followUps.replicate)}\n${agentLog()}`).toBe('succeeded');
    expect(followUps.restoreTest.status, JSON.stringify(followUps.restoreTest)).toBe('succeeded');
    expect(followUps.restoreTest.result).toMatchObject({ mismatchCount: 0 });
    expect(Number(followUps.restoreTest.result!.files)).toBeGreaterThanOrEqual(3);

    // the catalog: the snapshot in the primary store and its copy in the fs store, sizes only
    const catalog = async (storeId: string) =>
      (await gql<{ snapshots: { edges: { node: { snapshotId: string; fileCount: number; totalBytes: number; tags: string[] } }[] } }>(
        'query($f: SnapshotFilter) { snapshots(first: 20, filter: $f) { edges { node { snapshotId fileCount totalBytes tags } } } }', { f: { storeId } })).snapshots.edges.map((e) => e.node);
    const primary = await catalog(stores.s3.id);
    const copies = await catalog(stores.fs.id);
    expect(primary.length).toBeGreaterThanOrEqual(1);
    expect(copies.length).toBeGreaterThanOrEqual(1);
    // the scheduled job's snapshot is in the catalog, with the sizes the agent reported
    goldSnapshotId = String(scheduled.result?.snapshotId);
    const first = primary.find((s) => s.snapshotId === goldSnapshotId);
    expect(first, `${goldSnapshotId} in ${JSON.stringify(primary)}`).toBeDefined();
    expect(first!.fileCount).toBe(3);
    expect(Number(first!.totalBytes)).toBeGreaterThanOrEqual(2_000_000 + 18 * 5000);
  }, 300_000);

  it('an agent killed in the middle of a backup gets the job back after the lease expires and completes it', async () => {
    const bravo = agents[1]!;
    const big = path.join(tmp, 'src-bravo');
    await mkdir(big, { recursive: true });
    for (let i = 0; i < 32; i++) await writeFile(path.join(big, `part-${i}.bin`), randomBytes(8 * 1024 * 1024));
    await gql(`mutation($input: CreateResourceInput!) { createResource(input: $input) { id } }`, {
      input: { agentId: bravo.agentId, name: 'bravo-bulk', kind: 'path', paths: [big], labels: [{ key: 'tier', value: 'bulk' }] },
    });
    const bulk = await gql<{ createPolicy: { id: string } }>(`mutation($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }`, {
      input: { name: 'bulk', schedule: '0 3 1 1 *', rpoMinutes: 525600, storeId: stores.fs.id, selector: [{ key: 'tier', values: ['bulk'] }] },
    });
    await gql('mutation($id: ID!) { runPolicyNow(policyId: $id) { id } }', { id: bulk.createPolicy.id });
    const running = await waitFor('the bulk backup to run', async () => (await jobs({ kinds: ['backup'], policyId: bulk.createPolicy.id })).find((j) => j.status === 'running'), 60_000, 100);
    await bravo.process!.stop('SIGKILL');

    // nobody reports it: the sweeper of a replica requeues it when the lease runs out
    await waitFor('the job to be requeued', async () => {
      const j = await job(running.id);
      return j.status === 'queued' && j.attempt === 2 ? j : undefined;
    }, (LEASE_SECONDS + 10) * 1000, 300);
    startAgent(bravo);
    const done = await finished(running.id, 120_000);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(done.attempt).toBe(2);
    expect(done.events.map((e) => e.kind)).toContain('requeued');
  }, 240_000);

  it('restores one file to another agent, byte-identical', async () => {
    const charlie = agents[2]!;
    const target = path.join(tmp, 'restored-on-charlie');
    const file = path.join(sourceA, 'docs/deep/data.bin');
    const started = await gql<{ startRestore: { id: string } }>(`mutation($input: StartRestoreInput!) { startRestore(input: $input) { id } }`, {
      input: { storeId: stores.s3.id, snapshotId: goldSnapshotId, path: file, targetAgentId: charlie.agentId, targetPath: target },
    }, 1);
    const done = await finished(started.startRestore.id, 60_000);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(done.agentId).toBe(charlie.agentId);
    // a file restores to DIR/name (docs/cli.md, restore)
    const restored = await readFile(path.join(target, 'data.bin'));
    expect(restored.equals(await readFile(file))).toBe(true);
  }, 90_000);

  it('the control plane never held key material or a store credential, and the key proxy audited every issuance', async () => {
    // what a thief of the database would want: the KEK, a store's master-key envelope, its MAC and
    // chunker keys (asked of the key proxy here as agent alpha would, with a job token signed by the
    // control plane's key), the S3 secret and the enrollment token
    const alpha = agents[0]!;
    const identity = agentIdentityFromPem(await readFile(path.join(alpha.dataDir, 'agent.pem')));
    const jwks = (await (await fetch(`${cpUrls[0]}/.well-known/arca-jwks.json`)).json()) as { keys: { kid: string }[] };
    const signingKey = { privateKey: createPrivateKey(await readFile(signingKeyFile)), kid: jwks.keys[0]!.kid };
    const orgId = (await gql<{ viewer: { organizationId: string } }>('{ viewer { organizationId } }')).viewer.organizationId;
    const envelope = /"envelope"\s*:\s*"([^"]+)"/.exec((await readFile(path.join(stores.fs.dir, 'config'))).toString('utf8'))?.[1];
    expect(envelope, 'the managed store config names its envelope').toBeDefined();
    const provider = await RemoteKeyProvider.create({
      url: keyProxyUrl, storeId: stores.fs.storeId, envelope: envelope!, identity,
      token: await issueJobToken({ issuer: ISSUER, org: orgId, agent: alpha.agentId, store: stores.fs.storeId, job: 'e2e-key-audit', ops: ['restore'], agentKeyThumbprint: identity.thumbprint, lifetimeSeconds: 120 }, signingKey),
    });
    const { macKey, chunkerKey } = provider.agentKeys;
    const secrets = [
      (await readFile(kekFile)).toString('hex'), envelope!, s3.secretAccessKey, enrollmentToken.slice('arca_enr_'.length),
      ...[macKey, chunkerKey].flatMap((k) => [k.toString('hex'), k.toString('base64'), k.toString('base64url')]),
    ];
    await provider.close();

    const tables = await scratch.owner<{ table_name: string }[]>`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`;
    let dump = '';
    for (const { table_name } of tables) {
      const rows = await scratch.owner.unsafe(`SELECT to_jsonb(t)::text AS row FROM "${table_name}" t`);
      for (const r of rows) dump += `${r.row as string}\n`;
    }
    const logs = controlPlanes.map((cp) => cp.output).join('\n');
    for (const secret of secrets) {
      expect(dump.includes(secret), 'a secret in the database').toBe(false);
      expect(logs.includes(secret), 'a secret in a control-plane log').toBe(false);
    }
    // no job token (a JWT) in any log, the agents' included
    const jwt = /eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{20,}/;
    expect(jwt.test(logs)).toBe(false);
    expect(jwt.test(agents.flatMap((a) => a.logs).join('\n'))).toBe(false);
    expect(jwt.test(dump)).toBe(false);

    // the key proxy's issuance events reached the control plane's hash-chained audit log: every
    // key the agents received is accounted for by agent, store and job — counts, never keys
    const audit = await waitFor('key-proxy audit events', async () => {
      const r = await gql<{ auditEvents: { edges: { node: { action: string; target: string; payload: Record<string, unknown> } }[] } }>(
        '{ auditEvents(first: 150, filter: { actions: ["key-proxy.master-key", "key-proxy.agent-keys", "key-proxy.keys"] }) { edges { node { action target payload } } } }');
      const nodes = r.auditEvents.edges.map((e) => e.node);
      return nodes.some((n) => n.action === 'key-proxy.keys') && nodes.some((n) => n.action === 'key-proxy.master-key') ? nodes : undefined;
    }, 30_000, 500);
    // both stores' master keys were created through the proxy, by alpha (the init jobs)
    const created = audit.filter((n) => n.action === 'key-proxy.master-key');
    expect(new Set(created.map((n) => n.target))).toEqual(new Set([`store:${stores.s3.storeId}`, `store:${stores.fs.storeId}`]));
    const text = JSON.stringify(audit);
    expect(text).toContain(alpha.agentId);
    expect(text).toContain(stores.s3.storeId);
    for (const secret of secrets) expect(text.includes(secret)).toBe(false);
    const chain = await gql<{ verifyAuditChain: { valid: boolean } }>('{ verifyAuditChain { valid } }');
    expect(chain.verifyAuditChain.valid).toBe(true);
  }, 60_000);
});
