import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseJobSpec } from '@arca/contracts';
import { agents, Database, jobEvents, jobs, snapshots } from '@arca/db';
import { createControlPlane, createLogger, type ControlPlane } from '../src/server.ts';
import { CLOCK, type Clock } from '../src/scheduler/clock.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { credentialsAad } from '../src/stores/store-credentials.ts';
import { FollowUpService } from '../src/scheduler/follow-up.service.ts';
import { JobEvents } from '../src/jobs/job-events.ts';
import { SchedulerService } from '../src/scheduler/scheduler.service.ts';
import type { BootstrapResult } from '../src/organizations/organization.service.ts';
import { codesOf, startHarness, type Harness } from './support/control-plane-harness.ts';

// Medium tier: stores, resources, policies, the scheduler and jobs GraphQL on a scratch Postgres.
// The scheduler's clock is moved by the test (no waiting); its timer is never started here.
let h: Harness;
let acme: BootstrapResult;
let globex: BootstrapResult;
let clock: Clock;
const SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';

const keyDir = mkdtempSync(join(tmpdir(), 'arca-fleet-keys-'));
const secretsKey = randomBytes(32);

beforeAll(async () => {
  writeFileSync(join(keyDir, 'secrets.key'), secretsKey, { mode: 0o600 });
  h = await startHarness({ ARCA_CP_KEY_PROXY_URL: 'https://kp.example.test', ARCA_CP_SCHEDULER_TICK_SECONDS: '3600', ARCA_CP_SECRETS_KEY_FILE: join(keyDir, 'secrets.key') });
  acme = await h.bootstrap('acme');
  globex = await h.bootstrap('globex');
  clock = h.cp.app.get<Clock>(CLOCK);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await h?.close();
  rmSync(keyDir, { recursive: true, force: true });
});

// The due-policy lookup runs on the database's clock, the scheduler's re-check on the injectable
// one: the test's times lie in the past (from BASE, two days ago, on a whole hour), so the
// database finds them due and the moved clock decides.
const BASE = Math.floor((Date.now() - 2 * 86_400_000) / 3_600_000) * 3_600_000;
/** BASE + "hh:mm:ss" */
const t = (hms: string): Date => {
  const [hh, mm, ss] = hms.split(':').map(Number);
  return new Date(BASE + ((hh! * 60 + mm!) * 60 + (ss ?? 0)) * 1000);
};
const at = (hms: string, clocks: Clock[] = [clock]): void => {
  for (const c of clocks) vi.spyOn(c, 'now').mockReturnValue(t(hms));
};

async function agent(orgId: string, labels: Record<string, string>): Promise<string> {
  const id = randomUUID();
  await h.cp.db.withTenant(orgId, (tx) => tx.insert(agents).values({
    orgId, id, name: `agent-${id.slice(0, 6)}`, publicKeyX: randomBytes(32).toString('base64url'), keyThumbprint: randomBytes(32).toString('base64url'), status: 'active', labels, hostname: 'host', os: 'linux', arch: 'x64', version: '0.1.0',
  }));
  return id;
}

async function roleToken(org: BootstrapResult, role: string): Promise<string> {
  const roles = await h.gql<{ roles: Array<{ id: string; name: string }> }>(org.token, '{ roles { id name } }');
  const roleId = roles.data!.roles.find((r) => r.name === role)!.id;
  const user = await h.gql<{ createUser: { id: string } }>(org.token, 'mutation($i: CreateUserInput!) { createUser(input: $i) { id } }',
    { i: { email: `${role}-${randomUUID().slice(0, 6)}@x.test`, displayName: role, roleId } });
  return (await h.tokenFor(org.orgId, user.data!.createUser.id)).token;
}

const CREATE_STORE = 'mutation($i: CreateStoreInput!) { createStore(input: $i) { id name kind storeId status hasCredentials keyProxyUrl labels { key value } } }';
const CREATE_POLICY = 'mutation($i: CreatePolicyInput!) { createPolicy(input: $i) { id nextRunAt priority } }';
const CREATE_RESOURCE = 'mutation($i: CreateResourceInput!) { createResource(input: $i) { id effectiveLabels { key value } effectivePolicy { id } } }';

async function store(token: string, agentId: string, name: string, labels: Array<{ key: string; value: string }> = []): Promise<string> {
  const r = await h.gql<{ createStore: { id: string } }>(token, CREATE_STORE, { i: { name, kind: 'fs', url: `/srv/${name}`, initAgentId: agentId, labels } });
  expect(r.errors).toBeUndefined();
  return r.data!.createStore.id;
}

describe('stores', () => {
  it('registers a store with a fresh store ID and queues its init job on the chosen agent', async () => {
    const agentId = await agent(acme.orgId, { environment: 'prod' });
    const r = await h.gql<{ createStore: { id: string; storeId: string; status: string; hasCredentials: boolean; keyProxyUrl: string } }>(acme.token, CREATE_STORE, {
      i: { name: 'main', kind: 'fs', url: '/srv/arca', initAgentId: agentId, labels: [{ key: 'environment', value: 'prod' }] },
    });
    expect(r.errors).toBeUndefined();
    const s = r.data!.createStore;
    expect(s).toMatchObject({ status: 'initializing', hasCredentials: false, keyProxyUrl: 'https://kp.example.test' });
    expect(s.storeId).toMatch(/^[0-9a-f]{64}$/);
    const init = await h.cp.db.withTenant(acme.orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, acme.orgId), eq(jobs.storeId, s.id))));
    expect(init.map((j) => [j.kind, j.status, j.agentId])).toEqual([['init', 'queued', agentId]]);
    const audit = await h.gql<{ auditEvents: { edges: Array<{ node: { target: string } }> } }>(acme.token, '{ auditEvents(first: 5, filter: { actions: ["store.created"] }) { edges { node { target } } } }');
    expect(audit.data!.auditEvents.edges.map((e) => e.node.target)).toContain(`store:${s.id}`);
    const noField = await h.gql(acme.token, 'query($id: ID!) { store(id: $id) { credentials } }', { id: s.id });
    expect(codesOf(noField)).toEqual(['BAD_REQUEST']);
    expect(codesOf(await h.gql(acme.token, CREATE_STORE, { i: { name: 'main', kind: 'fs', url: '/x', initAgentId: agentId } }))).toEqual(['CONFLICT']);
    const inUrl = await h.gql(acme.token, CREATE_STORE, { i: { name: 'leaky', kind: 's3', url: `s3://AKIA:${SECRET}@bucket/x`, initAgentId: agentId } });
    expect(codesOf(inUrl)).toEqual(['INVALID_INPUT']);
    expect(JSON.stringify(inUrl.errors)).not.toContain(SECRET);
    expect(codesOf(await h.gql(acme.token, CREATE_STORE, { i: { name: 'nobody', kind: 'fs', url: '/x', initAgentId: randomUUID() } }))).toEqual(['INVALID_INPUT']);
    const on = await h.gql(acme.token, 'mutation($i: UpdateStoreInput!) { updateStore(input: $i) { immutable } }', { i: { id: s.id, immutable: true } });
    expect(on.errors).toBeUndefined();
    const off = await h.gql(acme.token, 'mutation($i: UpdateStoreInput!) { updateStore(input: $i) { immutable } }', { i: { id: s.id, immutable: false } });
    expect(codesOf(off)).toEqual(['INVALID_INPUT']);
  });

  it('seals credentials (bound to the store), never returns or logs them, rotates and clears them', async () => {
    const agentId = await agent(acme.orgId, {});
    const r = await h.gql<{ createStore: { id: string; hasCredentials: boolean } }>(acme.token, CREATE_STORE, {
      i: { name: 's3-main', kind: 's3', url: 's3://backups/arca', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: SECRET }, initAgentId: agentId },
    });
    expect(r.errors).toBeUndefined();
    const id = r.data!.createStore.id;
    expect(r.data!.createStore.hasCredentials).toBe(true);
    const [row] = await h.scratch.owner`SELECT credentials_sealed FROM stores WHERE id = ${id}`;
    const sealed = Buffer.from(row!.credentials_sealed as Uint8Array);
    expect(sealed.toString('latin1')).not.toContain(SECRET);
    const box = new SecretBox(secretsKey);
    expect(JSON.parse(box.open(sealed, credentialsAad(acme.orgId, id)).toString())).toEqual({ accessKeyId: 'AKIAEXAMPLE', secretAccessKey: SECRET });
    // bound to its store: the same bytes do not open as another store's
    expect(() => box.open(sealed, credentialsAad(acme.orgId, randomUUID()))).toThrow();
    const upd = 'mutation($i: UpdateStoreInput!) { updateStore(input: $i) { hasCredentials } }';
    const rotated = await h.gql<{ updateStore: { hasCredentials: boolean } }>(acme.token, upd, { i: { id, credentials: { accessKeyId: 'AKIANEW', secretAccessKey: `${SECRET}-2` } } });
    expect(rotated.data!.updateStore.hasCredentials).toBe(true);
    const cleared = await h.gql<{ updateStore: { hasCredentials: boolean } }>(acme.token, upd, { i: { id, clearCredentials: true } });
    expect(cleared.data!.updateStore.hasCredentials).toBe(false);
    const audit = await h.gql<{ auditEvents: unknown }>(acme.token, '{ auditEvents(first: 20, filter: { actions: ["store.created", "store.updated"] }) { edges { node { payload } } } }');
    expect(JSON.stringify(audit.data)).toContain('"credentials":"rotated"');
    expect(JSON.stringify(audit.data)).not.toContain(SECRET);
    expect(h.logs.join('')).not.toContain(SECRET);
  });

  it('is invisible to another tenant', async () => {
    const agentId = await agent(acme.orgId, {});
    const id = await store(acme.token, agentId, 'acme-only');
    expect(codesOf(await h.gql(globex.token, 'query($id: ID!) { store(id: $id) { id } }', { id }))).toEqual(['NOT_FOUND']);
    const list = await h.gql<{ stores: Array<{ id: string }> }>(globex.token, '{ stores { id } }');
    expect(list.data!.stores.map((s) => s.id)).not.toContain(id);
    const policy = await h.gql(globex.token, CREATE_POLICY, { i: { name: 'steal', schedule: '0 2 * * *', rpoMinutes: 1440, storeId: id } });
    expect(codesOf(policy)).toEqual(['INVALID_INPUT']);
  });
});

describe('roles', () => {
  it('operator manages, viewer and auditor read, a dev-only role sees and changes only dev', async () => {
    const org = await h.bootstrap('fleet-roles');
    const devAgent = await agent(org.orgId, { environment: 'dev' });
    const prodAgent = await agent(org.orgId, { environment: 'prod' });
    const operator = await roleToken(org, 'operator');
    const viewer = await roleToken(org, 'viewer');
    const auditor = await roleToken(org, 'auditor');
    const prodStore = await store(operator, prodAgent, 'prod-store', [{ key: 'environment', value: 'prod' }]);
    const devStore = await store(operator, devAgent, 'dev-store', [{ key: 'environment', value: 'dev' }]);
    for (const reader of [viewer, auditor]) {
      const list = await h.gql<{ stores: unknown[]; policies: unknown[]; resources: unknown[] }>(reader, '{ stores { id } policies { id } resources { id } }');
      expect(list.errors).toBeUndefined();
      expect(list.data!.stores).toHaveLength(2);
      expect(codesOf(await h.gql(reader, CREATE_STORE, { i: { name: 'no', kind: 'fs', url: '/no', initAgentId: devAgent } }))).toEqual(['FORBIDDEN']);
      expect(codesOf(await h.gql(reader, CREATE_POLICY, { i: { name: 'no', schedule: '0 2 * * *', rpoMinutes: 60, storeId: devStore } }))).toEqual(['FORBIDDEN']);
    }
    const custom = await h.gql<{ createRole: { id: string } }>(org.token, 'mutation { createRole(input: { name: "dev-operator", permissions: [{ action: "manage", subject: "Store", labels: [{ key: "environment", values: ["dev"] }] }, { action: "manage", subject: "Resource", labels: [{ key: "environment", values: ["dev"] }] }, { action: "manage", subject: "Job", labels: [{ key: "environment", values: ["dev"] }] }] }) { id } }');
    const user = await h.gql<{ createUser: { id: string } }>(org.token, 'mutation($i: CreateUserInput!) { createUser(input: $i) { id } }', { i: { email: 'dev@x.test', displayName: 'dev', roleId: custom.data!.createRole.id } });
    const dev = (await h.tokenFor(org.orgId, user.data!.createUser.id)).token;
    const seen = await h.gql<{ stores: Array<{ id: string }> }>(dev, '{ stores { id } }');
    expect(seen.data!.stores.map((s) => s.id)).toEqual([devStore]);
    expect(codesOf(await h.gql(dev, 'query($id: ID!) { store(id: $id) { id } }', { id: prodStore }))).toEqual(['NOT_FOUND']);
    expect(codesOf(await h.gql(dev, CREATE_STORE, { i: { name: 'p2', kind: 'fs', url: '/p2', initAgentId: prodAgent, labels: [{ key: 'environment', value: 'prod' }] } }))).toEqual(['FORBIDDEN']);
    const relabel = await h.gql(dev, 'mutation($i: UpdateStoreInput!) { updateStore(input: $i) { id } }', { i: { id: devStore, labels: [{ key: 'environment', value: 'prod' }] } });
    expect(codesOf(relabel)).toEqual(['FORBIDDEN']);
    const plain = 'mutation($i: CreateResourceInput!) { createResource(input: $i) { id } }';
    const devResource = await h.gql(dev, plain, { i: { agentId: devAgent, name: 'dev-home', kind: 'path', paths: ['/home'] } });
    expect(devResource.errors).toBeUndefined();
    const prodResource = await h.gql(dev, plain, { i: { agentId: prodAgent, name: 'prod-home', kind: 'path', paths: ['/home'] } });
    expect(codesOf(prodResource)).toEqual(['FORBIDDEN']);
    // the role grants nothing on policies: asking for one is refused, not answered empty
    expect(codesOf(await h.gql(dev, '{ resources { effectivePolicy { id } } }'))).toEqual(['FORBIDDEN']);
    const mine = await h.gql<{ resources: Array<{ id: string }> }>(dev, '{ resources { id } }');
    expect(mine.data!.resources).toHaveLength(1);
    // jobs take their store's (or resource's) labels: the dev init job only
    const devJobs = await h.gql<{ jobs: { edges: Array<{ node: { id: string; storeId: string } }> } }>(dev, '{ jobs { edges { node { id storeId } } } }');
    expect(devJobs.data!.jobs.edges.map((e) => e.node.storeId)).toEqual([devStore]);
    const all = await h.gql<{ jobs: { edges: Array<{ node: { id: string; storeId: string } }> } }>(operator, '{ jobs { edges { node { id storeId } } } }');
    const prodJob = all.data!.jobs.edges.find((e) => e.node.storeId === prodStore)!.node.id;
    expect(codesOf(await h.gql(dev, 'query($id: ID!) { job(id: $id) { id } }', { id: prodJob }))).toEqual(['NOT_FOUND']);
    expect(codesOf(await h.gql(dev, 'mutation($id: ID!) { cancelJob(id: $id) { status } }', { id: prodJob }))).toEqual(['FORBIDDEN']);
    const cancelled = await h.gql<{ cancelJob: { status: string } }>(dev, 'mutation($id: ID!) { cancelJob(id: $id) { status } }', { id: devJobs.data!.jobs.edges[0]!.node.id });
    expect(cancelled.data!.cancelJob.status).toBe('cancelled');
  });
});

describe('policies', () => {
  it('validates with messages that say what to write', async () => {
    const agentId = await agent(acme.orgId, {});
    const storeId = await store(acme.token, agentId, 'val-store');
    const bad = async (i: Record<string, unknown>): Promise<string[]> => {
      const r = await h.gql(acme.token, CREATE_POLICY, { i: { name: `p-${randomUUID()}`, schedule: '0 2 * * *', rpoMinutes: 1440, storeId, ...i } });
      expect(codesOf(r)).toEqual(['INVALID_INPUT']);
      return ((r.errors![0]!.extensions!.fields ?? []) as Array<{ path: string }>).map((f) => f.path);
    };
    expect(await bad({ schedule: '61 2 * * *' })).toEqual(['schedule']);
    expect(await bad({ schedule: '@daily' })).toEqual(['schedule']);
    expect(await bad({ timezone: 'Mars/Base' })).toEqual(['timezone']);
    expect(await bad({ copyStoreId: storeId })).toEqual(['copyStoreId']);
    expect(await bad({ retention: { keepLast: 0 } })).toEqual(['retention']);
    expect(await bad({ rpoMinutes: 0 })).toEqual(['rpoMinutes']);
    expect(await bad({ storeId: randomUUID() })).toEqual(['storeId']);
  });

  it('effective policy: lowest priority number, then the oldest; labels of agent overlaid by resource', async () => {
    const org = await h.bootstrap('effective');
    const agentId = await agent(org.orgId, { environment: 'prod', site: 'fra' });
    const storeId = await store(org.token, agentId, 'eff-store');
    const mk = async (name: string, priority: number, selector: Array<{ key: string; values: string[] }>): Promise<string> => {
      const r = await h.gql<{ createPolicy: { id: string } }>(org.token, CREATE_POLICY, { i: { name, schedule: '0 2 * * *', rpoMinutes: 1440, storeId, priority, selector } });
      expect(r.errors).toBeUndefined();
      return r.data!.createPolicy.id;
    };
    const catchAll = await mk('catch-all', 100, []);
    const prod = await mk('prod', 10, [{ key: 'environment', values: ['prod'] }]);
    await mk('prod-later', 10, [{ key: 'environment', values: ['prod'] }]);
    const r1 = await h.gql<{ createResource: { effectiveLabels: unknown; effectivePolicy: { id: string } } }>(org.token, CREATE_RESOURCE, { i: { agentId, name: 'etc', kind: 'path', paths: ['/etc'] } });
    expect(r1.data!.createResource.effectivePolicy.id).toBe(prod);
    const r2 = await h.gql<{ createResource: { effectiveLabels: unknown; effectivePolicy: { id: string } } }>(org.token, CREATE_RESOURCE,
      { i: { agentId, name: 'scratch', kind: 'path', paths: ['/scratch'], labels: [{ key: 'environment', value: 'dev' }] } });
    expect(r2.data!.createResource.effectiveLabels).toEqual([{ key: 'environment', value: 'dev' }, { key: 'site', value: 'fra' }]);
    expect(r2.data!.createResource.effectivePolicy.id).toBe(catchAll);
  });
});

describe('scheduler', () => {
  async function setup(name: string, schedule = '0 * * * *'): Promise<{ org: BootstrapResult; policyId: string; resources: string[] }> {
    at('00:30:00');
    const org = await h.bootstrap(name);
    const agentId = await agent(org.orgId, { environment: 'prod' });
    const storeId = await store(org.token, agentId, `${name}-store`);
    const p = await h.gql<{ createPolicy: { id: string; nextRunAt: string } }>(org.token, CREATE_POLICY, { i: { name: 'hourly', schedule, rpoMinutes: 60, storeId } });
    expect(p.data!.createPolicy.nextRunAt).toBe(t(schedule === '0 * * * *' ? '01:00:00' : '00:31:00').toISOString());
    const resources: string[] = [];
    for (const path of ['/a', '/b']) {
      const r = await h.gql<{ createResource: { id: string } }>(org.token, CREATE_RESOURCE, { i: { agentId, name: path, kind: 'path', paths: [path] } });
      resources.push(r.data!.createResource.id);
    }
    return { org, policyId: p.data!.createPolicy.id, resources };
  }
  const backups = (orgId: string) => h.cp.db.withTenant(orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.kind, 'backup'))));
  const finish = (orgId: string, ids: string[]) => h.cp.db.withTenant(orgId, async (tx) => {
    for (const id of ids) await tx.update(jobs).set({ status: 'succeeded', finishedAt: new Date() }).where(and(eq(jobs.orgId, orgId), eq(jobs.id, id)));
  });

  it('creates one backup per resource per slot, coalesces missed slots, skips overlapping ones', async () => {
    const { org, resources } = await setup('sched');
    const scheduler = h.cp.app.get(SchedulerService);
    at('00:59:59');
    await scheduler.tick();
    expect(await backups(org.orgId)).toHaveLength(0);
    at('01:00:01');
    await scheduler.tick();
    await scheduler.tick();
    const first = await backups(org.orgId);
    expect(first.map((j) => j.resourceId).sort()).toEqual([...resources].sort());
    expect(new Set(first.map((j) => j.scheduledFor!.toISOString()))).toEqual(new Set([t('01:00:00').toISOString()]));
    // the 02:00 slot finds both backups still queued: skipped, recorded on the active jobs
    at('02:00:05');
    await scheduler.tick();
    expect(await backups(org.orgId)).toHaveLength(2);
    const skipped = await h.cp.db.withTenant(org.orgId, (tx) => tx.select().from(jobEvents).where(and(eq(jobEvents.orgId, org.orgId), eq(jobEvents.kind, 'skipped'))));
    expect(skipped).toHaveLength(2);
    await finish(org.orgId, first.map((j) => j.id));
    // down from 02:00 to 07:30: one run per resource, not five
    at('07:30:00');
    await scheduler.tick();
    const after = await backups(org.orgId);
    expect(after).toHaveLength(4);
    const policy = await h.gql<{ policies: Array<{ nextRunAt: string }> }>(org.token, '{ policies { nextRunAt } }');
    expect(policy.data!.policies[0]!.nextRunAt).toBe(t('08:00:00').toISOString());
  });

  it('a postgres resource\'s scheduled and run-now backups carry the postgres spec the agent accepts (no password anywhere)', async () => {
    at('00:30:00');
    const org = await h.bootstrap('pg-sched');
    const agentId = await agent(org.orgId, {});
    const storeId = await store(org.token, agentId, 'pg-sched-store');
    const p = await h.gql<{ createPolicy: { id: string } }>(org.token, CREATE_POLICY, { i: { name: 'hourly', schedule: '0 * * * *', rpoMinutes: 60, storeId } });
    const FIELDS = 'id kind database databaseHost databasePort databaseUser paths excludes';
    const create = (i: Record<string, unknown>) => h.gql<{ createResource: Record<string, unknown> }>(org.token, `mutation($i: CreateResourceInput!) { createResource(input: $i) { ${FIELDS} } }`, { i: { agentId, ...i } });
    const crm = await create({ name: 'crm', kind: 'postgres', database: 'crm', databaseHost: 'db1.internal', databasePort: 5433, databaseUser: 'backup' });
    expect(crm.errors).toBeUndefined();
    expect(crm.data!.createResource).toMatchObject({ kind: 'postgres', database: 'crm', databaseHost: 'db1.internal', databasePort: 5433, databaseUser: 'backup', paths: [], excludes: [] });
    const crmId = crm.data!.createResource.id as string;
    const plain = await create({ name: 'wiki', kind: 'postgres', database: 'wiki' });
    expect(plain.data!.createResource).toMatchObject({ databaseHost: null, databasePort: null, databaseUser: null });
    const wikiId = plain.data!.createResource.id as string;
    // refused: a connection on a path resource, names libpq would read as connection strings, bad hosts
    for (const bad of [
      { name: 'x1', kind: 'path', paths: ['/srv'], databaseHost: 'db1' },
      { name: 'x2', kind: 'postgres', database: 'host=evil.example.com' },
      { name: 'x3', kind: 'postgres', database: 'crm', databaseHost: '-oProxyCommand=x' },
      { name: 'x4', kind: 'postgres', database: 'crm', databaseUser: 'a b' },
      { name: 'x5', kind: 'postgres', database: 'crm', databasePort: 70000 },
    ]) expect(codesOf(await create(bad)), JSON.stringify(bad)).toEqual(['INVALID_INPUT']);
    expect(codesOf(await create({ name: 'x6', kind: 'postgres', database: 'crm', databasePassword: 'secret' }))).toEqual(['BAD_REQUEST']);

    const backupsOf = async (resourceId: string) => (await h.cp.db.withTenant(org.orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, org.orgId), eq(jobs.resourceId, resourceId)))))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    const tags = (resourceId: string) => [`resource-${resourceId}`, `policy-${p.data!.createPolicy.id}`];
    at('01:00:01');
    await h.cp.app.get(SchedulerService).tick();
    const [scheduled] = await backupsOf(crmId);
    expect(scheduled).toMatchObject({ kind: 'backup', agentId, scheduledFor: t('01:00:00') });
    expect(scheduled!.spec).toEqual({ resourceId: crmId, postgres: { database: 'crm', host: 'db1.internal', port: 5433, user: 'backup' }, tags: tags(crmId) });
    expect(parseJobSpec('backup', scheduled!.spec)).toEqual(scheduled!.spec);
    const [wiki] = await backupsOf(wikiId);
    expect(wiki!.spec).toEqual({ resourceId: wikiId, postgres: { database: 'wiki' }, tags: tags(wikiId) });

    // host and port removed, the database renamed: the next (run-now) backup follows
    await h.cp.db.withTenant(org.orgId, (tx) => tx.update(jobs).set({ status: 'succeeded', finishedAt: new Date() }).where(eq(jobs.orgId, org.orgId)));
    const upd = await h.gql<{ updateResource: Record<string, unknown> }>(org.token, `mutation($i: UpdateResourceInput!) { updateResource(input: $i) { ${FIELDS} } }`, {
      i: { id: crmId, database: 'crm2', databaseHost: '', databasePort: 0 },
    });
    expect(upd.errors).toBeUndefined();
    expect(upd.data!.updateResource).toMatchObject({ database: 'crm2', databaseHost: null, databasePort: null, databaseUser: 'backup' });
    const run = await h.gql<{ runPolicyNow: Array<{ id: string }> }>(org.token, 'mutation($p: ID!) { runPolicyNow(policyId: $p) { id } }', { p: p.data!.createPolicy.id });
    expect(run.errors).toBeUndefined();
    const now = (await backupsOf(crmId)).at(-1)!;
    expect(now.id).not.toBe(scheduled!.id);
    expect(now.scheduledFor).toBeNull();
    expect(now.spec).toEqual({ resourceId: crmId, postgres: { database: 'crm2', user: 'backup' }, tags: tags(crmId) });
    expect(parseJobSpec('backup', now.spec)).toEqual(now.spec);
    // a path resource cannot be given a connection afterwards
    const pathRes = await create({ name: 'files', kind: 'path', paths: ['/srv'] });
    expect(codesOf(await h.gql(org.token, 'mutation($i: UpdateResourceInput!) { updateResource(input: $i) { id } }', { i: { id: pathRes.data!.createResource.id, databaseUser: 'x' } }))).toEqual(['INVALID_INPUT']);
  });

  it('two control planes ticking at once create each scheduled job exactly once', async () => {
    const { org } = await setup('twins', '* * * * *');
    const db2 = await Database.open({ kind: 'postgres', url: h.scratch.appUrl, poolSize: 4 });
    const second: ControlPlane = await createControlPlane({ config: h.config, db: db2, logger: createLogger({ logLevel: 'silent' }) });
    try {
      const a = h.cp.app.get(SchedulerService);
      const b = second.app.get(SchedulerService);
      const clocks = [clock, second.app.get<Clock>(CLOCK)];
      for (let minute = 1; minute <= 5; minute++) {
        at(`00:3${minute}:01`, clocks);
        await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
        await finish(org.orgId, (await backups(org.orgId)).filter((j) => j.status === 'queued').map((j) => j.id));
      }
      const all = await backups(org.orgId);
      expect(all).toHaveLength(10);
      const slots = all.map((j) => `${j.resourceId}@${j.scheduledFor!.toISOString()}`);
      expect(new Set(slots).size).toBe(10);
    } finally {
      await second.close();
    }
  });
});

describe('jobs GraphQL', () => {
  it('lists newest first with filters, shows events, runs a policy now, cancels', async () => {
    at('00:30:00');
    const org = await h.bootstrap('jobs-gql');
    const agentId = await agent(org.orgId, {});
    const storeId = await store(org.token, agentId, 'jobs-store');
    const p = await h.gql<{ createPolicy: { id: string } }>(org.token, CREATE_POLICY, { i: { name: 'nightly', schedule: '0 2 * * *', rpoMinutes: 1440, storeId } });
    await h.gql(org.token, CREATE_RESOURCE, { i: { agentId, name: 'etc', kind: 'path', paths: ['/etc'] } });
    const announced: string[] = [];
    const off = h.cp.app.get(JobEvents).onQueued((c) => announced.push(c.jobId));
    const run = await h.gql<{ runPolicyNow: Array<{ id: string; kind: string; status: string }> }>(org.token, 'mutation($p: ID!) { runPolicyNow(policyId: $p) { id kind status } }', { p: p.data!.createPolicy.id });
    off();
    expect(run.errors).toBeUndefined();
    // announced to this replica once committed (pollers wake, subscribers see it)
    expect(announced).toEqual([run.data!.runPolicyNow[0]!.id]);
    expect(run.data!.runPolicyNow.map((j) => [j.kind, j.status])).toEqual([['backup', 'queued']]);
    const again = await h.gql<{ runPolicyNow: unknown[] }>(org.token, 'mutation($p: ID!) { runPolicyNow(policyId: $p) { id } }', { p: p.data!.createPolicy.id });
    expect(again.data!.runPolicyNow).toEqual([]);
    const list = await h.gql<{ jobs: { edges: Array<{ node: { kind: string; events: Array<{ kind: string }> } }> } }>(org.token, '{ jobs(first: 10) { edges { node { kind events { kind } } } } }');
    expect(list.data!.jobs.edges.map((e) => e.node.kind)).toEqual(['backup', 'init']);
    expect(list.data!.jobs.edges[0]!.node.events.map((e) => e.kind)).toEqual(['queued']);
    const only = await h.gql<{ jobs: { edges: unknown[] } }>(org.token, '{ jobs(filter: { kinds: ["init"] }) { edges { cursor } } }');
    expect(only.data!.jobs.edges).toHaveLength(1);
    const viewer = await roleToken(org, 'viewer');
    expect(codesOf(await h.gql(viewer, 'mutation($id: ID!) { cancelJob(id: $id) { status } }', { id: run.data!.runPolicyNow[0]!.id }))).toEqual(['FORBIDDEN']);
    const cancelled = await h.gql<{ cancelJob: { status: string } }>(org.token, 'mutation($id: ID!) { cancelJob(id: $id) { status } }', { id: run.data!.runPolicyNow[0]!.id });
    expect(cancelled.data!.cancelJob.status).toBe('cancelled');
    expect(codesOf(await h.gql(globex.token, 'query($id: ID!) { job(id: $id) { id } }', { id: run.data!.runPolicyNow[0]!.id }))).toEqual(['NOT_FOUND']);
    // cancelling a queued init job fails its store (through the completion event and follow-ups)
    const initJob = list.data!.jobs.edges.length === 2 ? await h.gql<{ jobs: { edges: Array<{ node: { id: string } }> } }>(org.token, '{ jobs(filter: { kinds: ["init"] }) { edges { node { id } } } }') : null;
    await h.gql(org.token, 'mutation($id: ID!) { cancelJob(id: $id) { status } }', { id: initJob!.data!.jobs.edges[0]!.node.id });
    let status = '';
    for (let i = 0; i < 50 && status !== 'failed'; i++) {
      status = (await h.gql<{ store: { status: string } }>(org.token, 'query($id: ID!) { store(id: $id) { status } }', { id: storeId })).data!.store.status;
      if (status !== 'failed') await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe('failed');
  });
});

describe('follow-ups and the catalog', () => {
  async function backupDone(name: string, policy: Record<string, unknown>, immutable = false) {
    at('00:30:00');
    const org = await h.bootstrap(name);
    const agentId = await agent(org.orgId, { environment: 'prod' });
    const storeId = await store(org.token, agentId, `${name}-a`, [{ key: 'environment', value: 'prod' }]);
    const copyId = await store(org.token, agentId, `${name}-b`);
    if (immutable) await h.gql(org.token, 'mutation($i: UpdateStoreInput!) { updateStore(input: $i) { id } }', { i: { id: storeId, immutable: true } });
    const p = await h.gql<{ createPolicy: { id: string } }>(org.token, CREATE_POLICY, {
      i: { name: 'gold', schedule: '0 2 * * *', rpoMinutes: 1440, storeId, ...policy, ...(policy.copyStoreId === true ? { copyStoreId: copyId } : {}) },
    });
    expect(p.errors).toBeUndefined();
    const r = await h.gql<{ createResource: { id: string } }>(org.token, CREATE_RESOURCE, { i: { agentId, name: 'db', kind: 'postgres', database: 'crm' } });
    const run = await h.gql<{ runPolicyNow: Array<{ id: string }> }>(org.token, 'mutation($p: ID!) { runPolicyNow(policyId: $p) { id } }', { p: p.data!.createPolicy.id });
    const jobId = run.data!.runPolicyNow[0]!.id;
    const snapshotId = randomBytes(32).toString('hex');
    await h.cp.db.withTenant(org.orgId, async (tx) => {
      await tx.update(jobs).set({ status: 'succeeded', finishedAt: new Date() }).where(and(eq(jobs.orgId, org.orgId), eq(jobs.id, jobId)));
      await tx.insert(snapshots).values({
        orgId: org.orgId, storeId, snapshotId, resourceId: r.data!.createResource.id, agentId, jobId, time: t('02:00:00'), hostname: 'db1', tags: ['nightly'],
        totalBytes: 5_000_000_000, fileCount: 12, dirCount: 3, newBytes: 1000, storedBytes: 800, durationMs: 4200,
      });
    });
    return { org, jobId, storeId, snapshotId, resourceId: r.data!.createResource.id, followUps: h.cp.app.get(FollowUpService) };
  }
  const kindsOf = async (orgId: string, ids: string[]) => (await h.cp.db.withTenant(orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), inArray(jobs.id, ids))))).map((j) => j.kind).sort();

  it('a successful backup queues replicate, forget and a due restore test', async () => {
    const b = await backupDone('follow', { copyStoreId: true, retention: { keepDaily: 7 }, restoreTestEveryDays: 30 });
    const ids = await b.followUps.handle(b.org.orgId, b.jobId);
    expect(await kindsOf(b.org.orgId, ids)).toEqual(['forget', 'replicate', 'restore-test']);
    const forget = await h.cp.db.withTenant(b.org.orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, b.org.orgId), eq(jobs.kind, 'forget'))));
    expect(forget[0]!.spec).toEqual({ retention: { keepDaily: 7 }, prune: true, tags: [`resource-${b.resourceId}`] });
  });

  it('no forget on an immutable store; nothing after a failed backup', async () => {
    const b = await backupDone('frozen', { retention: { keepDaily: 7 } }, true);
    expect(await b.followUps.handle(b.org.orgId, b.jobId)).toEqual([]);
    await h.cp.db.withTenant(b.org.orgId, (tx) => tx.update(jobs).set({ status: 'failed' }).where(and(eq(jobs.orgId, b.org.orgId), eq(jobs.id, b.jobId))));
    const c = await backupDone('failing', { retention: { keepDaily: 7 } });
    await h.cp.db.withTenant(c.org.orgId, (tx) => tx.update(jobs).set({ status: 'failed' }).where(and(eq(jobs.orgId, c.org.orgId), eq(jobs.id, c.jobId))));
    expect(await c.followUps.handle(c.org.orgId, c.jobId)).toEqual([]);
  });

  it('a successful init job makes its store ready, once', async () => {
    const org = await h.bootstrap('init-ready');
    const agentId = await agent(org.orgId, {});
    const storeId = await store(org.token, agentId, 'fresh');
    const [init] = await h.cp.db.withTenant(org.orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, org.orgId), eq(jobs.storeId, storeId))));
    await h.cp.db.withTenant(org.orgId, (tx) => tx.update(jobs).set({ status: 'succeeded', finishedAt: new Date() }).where(and(eq(jobs.orgId, org.orgId), eq(jobs.id, init!.id))));
    const followUps = h.cp.app.get(FollowUpService);
    await followUps.handle(org.orgId, init!.id);
    await followUps.handle(org.orgId, init!.id);
    const s = await h.gql<{ store: { status: string } }>(org.token, 'query($id: ID!) { store(id: $id) { status } }', { id: storeId });
    expect(s.data!.store.status).toBe('ready');
    const audit = await h.gql<{ auditEvents: { edges: unknown[] } }>(org.token, '{ auditEvents(first: 10, filter: { actions: ["store.ready"] }) { edges { cursor } } }');
    expect(audit.data!.auditEvents.edges).toHaveLength(1);
    const check = await h.gql<{ startCheck: { kind: string; agentId: string; spec: unknown } }>(org.token, 'mutation($s: ID!) { startCheck(input: { storeId: $s, readData: true }) { kind agentId spec } }', { s: storeId });
    expect(check.data!.startCheck).toEqual({ kind: 'check', agentId, spec: { readData: true } });
  });

  it('the catalog lists metadata with filters and pages; restores need a known snapshot', async () => {
    const b = await backupDone('catalog', {});
    const q = 'query($f: SnapshotFilter, $a: String) { snapshots(first: 1, after: $a, filter: $f) { edges { node { snapshotId totalBytes fileCount hostname tags } } pageInfo { hasNextPage endCursor } } }';
    const r = await h.gql<{ snapshots: { edges: Array<{ node: Record<string, unknown> }>; pageInfo: { hasNextPage: boolean } } }>(b.org.token, q, { f: { resourceId: b.resourceId } });
    expect(r.data!.snapshots.edges.map((e) => e.node)).toEqual([{ snapshotId: b.snapshotId, totalBytes: 5_000_000_000, fileCount: 12, hostname: 'db1', tags: ['nightly'] }]);
    expect(r.data!.snapshots.pageInfo.hasNextPage).toBe(false);
    const none = await h.gql<{ snapshots: { edges: unknown[] } }>(b.org.token, q, { f: { from: t('03:00:00').toISOString() } });
    expect(none.data!.snapshots.edges).toEqual([]);
    expect((await h.gql<{ snapshots: { edges: unknown[] } }>(globex.token, q, {})).data!.snapshots.edges).toEqual([]);
    const agentId = (await h.cp.db.withTenant(b.org.orgId, (tx) => tx.select().from(agents).where(eq(agents.orgId, b.org.orgId))))[0]!.id;
    const restore = 'mutation($i: StartRestoreInput!) { startRestore(input: $i) { kind status spec } }';
    const ok = await h.gql<{ startRestore: { kind: string; spec: unknown } }>(b.org.token, restore, { i: { storeId: b.storeId, snapshotId: b.snapshotId, path: '/', targetAgentId: agentId, targetPath: '/tmp/r' } });
    expect(ok.data!.startRestore).toMatchObject({ kind: 'restore', spec: { snapshotId: b.snapshotId, path: '/', targetPath: '/tmp/r' } });
    const unknown = await h.gql(b.org.token, restore, { i: { storeId: b.storeId, snapshotId: 'f'.repeat(64), targetAgentId: agentId, targetPath: '/tmp/r' } });
    expect(codesOf(unknown)).toEqual(['NOT_FOUND']);
    const relative = await h.gql(b.org.token, restore, { i: { storeId: b.storeId, snapshotId: b.snapshotId, targetAgentId: agentId, targetPath: 'tmp/r' } });
    expect(codesOf(relative)).toEqual(['INVALID_INPUT']);
  });
});

describe('changes', () => {
  it('updating a schedule moves next_run_at; disabling stops scheduling; deletes are audited', async () => {
    at('00:30:00');
    const org = await h.bootstrap('changes');
    const agentId = await agent(org.orgId, {});
    const storeId = await store(org.token, agentId, 'chg');
    const p = await h.gql<{ createPolicy: { id: string } }>(org.token, CREATE_POLICY, { i: { name: 'p', schedule: '0 * * * *', rpoMinutes: 60, storeId } });
    const id = p.data!.createPolicy.id;
    const upd = 'mutation($i: UpdatePolicyInput!) { updatePolicy(input: $i) { nextRunAt enabled schedule retention { keepLast } } }';
    const moved = await h.gql<{ updatePolicy: { nextRunAt: string } }>(org.token, upd, { i: { id, schedule: '45 * * * *' } });
    expect(moved.data!.updatePolicy.nextRunAt).toBe(t('00:45:00').toISOString());
    const off = await h.gql<{ updatePolicy: { nextRunAt: string | null } }>(org.token, upd, { i: { id, enabled: false } });
    expect(off.data!.updatePolicy.nextRunAt).toBeNull();
    const r = await h.gql<{ createResource: { id: string } }>(org.token, CREATE_RESOURCE, { i: { agentId, name: 'x', kind: 'path', paths: ['/x'] } });
    at('05:00:00');
    await h.cp.app.get(SchedulerService).tick();
    const none = await h.cp.db.withTenant(org.orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, org.orgId), eq(jobs.kind, 'backup'))));
    expect(none).toEqual([]);
    expect(codesOf(await h.gql(org.token, upd, { i: { id, retention: { keepLast: 3 }, clear: ['retention'] } }))).toEqual(['INVALID_INPUT']);
    const kept = await h.gql<{ updatePolicy: { retention: { keepLast: number } } }>(org.token, upd, { i: { id, retention: { keepLast: 3 } } });
    expect(kept.data!.updatePolicy.retention).toEqual({ keepLast: 3 });
    const renamed = await h.gql<{ updateResource: { name: string; paths: string[] } }>(org.token, 'mutation($i: UpdateResourceInput!) { updateResource(input: $i) { name paths } }', { i: { id: r.data!.createResource.id, name: 'y', paths: ['/y'] } });
    expect(renamed.data!.updateResource).toEqual({ name: 'y', paths: ['/y'] });
    expect((await h.gql(org.token, 'mutation($id: ID!) { deleteResource(id: $id) }', { id: r.data!.createResource.id })).errors).toBeUndefined();
    expect((await h.gql(org.token, 'mutation($id: ID!) { deletePolicy(id: $id) }', { id })).errors).toBeUndefined();
    const audit = await h.gql<{ auditEvents: { edges: Array<{ node: { action: string } }> } }>(org.token,
      '{ auditEvents(first: 50, filter: { actions: ["policy.created", "policy.updated", "policy.deleted", "resource.created", "resource.updated", "resource.deleted", "store.created"] }) { edges { node { action } } } }');
    expect(audit.data!.auditEvents.edges.map((e) => e.node.action).sort()).toEqual([
      'policy.created', 'policy.deleted', 'policy.updated', 'policy.updated', 'policy.updated', 'resource.created', 'resource.deleted', 'resource.updated', 'store.created',
    ]);
  });
});

describe('scheduler loop', () => {
  it('ticks on its own every ARCA_CP_SCHEDULER_TICK_SECONDS once started, and stops', async () => {
    at('00:30:00');
    const org = await h.bootstrap('loop');
    const agentId = await agent(org.orgId, {});
    const storeId = await store(org.token, agentId, 'loop-store');
    await h.gql(org.token, CREATE_POLICY, { i: { name: 'p', schedule: '0 * * * *', rpoMinutes: 60, storeId } });
    await h.gql(org.token, CREATE_RESOURCE, { i: { agentId, name: 'loop', kind: 'path', paths: ['/loop'] } });
    const db2 = await Database.open({ kind: 'postgres', url: h.scratch.appUrl, poolSize: 2 });
    const fast = await createControlPlane({ config: { ...h.config, scheduler: { tickMs: 50 } }, db: db2, logger: createLogger({ logLevel: 'silent' }) });
    try {
      at('01:00:01', [fast.app.get<Clock>(CLOCK)]);
      const scheduler = fast.app.get(SchedulerService);
      scheduler.start();
      const count = async (): Promise<number> => (await h.cp.db.withTenant(org.orgId, (tx) => tx.select().from(jobs).where(and(eq(jobs.orgId, org.orgId), eq(jobs.kind, 'backup'))))).length;
      const deadline = Date.now() + 5000;
      while ((await count()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(await count()).toBe(1);
      await scheduler.stop();
      at('02:00:01', [fast.app.get<Clock>(CLOCK)]);
      await new Promise((r) => setTimeout(r, 200));
      expect(await count()).toBe(1);
    } finally {
      await fast.close();
    }
  });
});
