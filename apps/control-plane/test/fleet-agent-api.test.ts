import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProof, generateAgentIdentity, JobTokenVerifier, type AgentIdentity } from '@arca/crypto';
import { AGENT_API_MAX_BODY_BYTES, AGENT_API_PATHS, JWKS_PATH, type AgentHeartbeatRequest, type EnrollRequest, type LeasedJob } from '@arca/contracts';
// the agent's real client, so both sides of /agent/v1 are proven against each other (a test-only reach across apps)
// eslint-disable-next-line @nx/enforce-module-boundaries
import { ControlPlaneClient, ControlPlaneRequestError } from '../../agent/src/daemon/control-plane-client.ts';
import { agentCredential } from '../src/agent-api/agent-credential.ts';
import { UNAUTHENTICATED_MESSAGE } from '../src/agent-api/agent-api-error.ts';
import { HeartbeatWriter } from '../src/agent-api/heartbeat-writer.ts';
import { ENROLLMENT_PREFIX, newOpaqueToken } from '../src/auth/api-token-format.ts';
import type { BootstrapResult } from '../src/organizations/organization.service.ts';
import { newJobSigningKeyFile } from '../src/secrets/key-files.ts';
import { codesOf, startHarness, type Harness } from './support/control-plane-harness.ts';

// Medium tier: the agent API (docs/fleet.md §2-3) on a listening control plane and a scratch
// Postgres, driven by the agent's own client (apps/agent/src/daemon/control-plane-client.ts), so
// both sides are held to one protocol; raw requests only where a test must break the protocol.
let h: Harness;
let acme: BootstrapResult;
let globex: BootstrapResult;
let url: string;
const keyDir = mkdtempSync(join(tmpdir(), 'arca-agent-api-keys-'));
const S3 = { accessKeyId: 'AKIAAGENTAPI', secretAccessKey: 'agent-api-secret-wJalrXUtnFEMI-K7MDENG' };
const issuedTokens: string[] = [];

function keyEnv(dir: string): Record<string, string> {
  writeFileSync(join(dir, 'secrets.key'), randomBytes(32), { mode: 0o600 });
  writeFileSync(join(dir, 'job-signing.pem'), newJobSigningKeyFile(), { mode: 0o600 });
  return { ARCA_CP_SECRETS_KEY_FILE: join(dir, 'secrets.key'), ARCA_CP_JOB_SIGNING_KEY_FILE: join(dir, 'job-signing.pem') };
}

beforeAll(async () => {
  h = await startHarness({
    ...keyEnv(keyDir), ARCA_CP_PORT: '0', ARCA_CP_SCHEDULER_TICK_SECONDS: '3600', ARCA_CP_KEY_PROXY_URL: 'https://kp.example.test',
    ARCA_CP_HEARTBEAT_FLUSH_MS: '50', ARCA_CP_AGENT_HEARTBEAT_SECONDS: '15', ARCA_CP_LEASE_SWEEP_SECONDS: '3600',
    // GraphQL may take more; the agent API still stops at 1 MiB
    ARCA_CP_MAX_BODY_BYTES: String(4 * 1024 * 1024),
  });
  acme = await h.bootstrap('acme');
  globex = await h.bootstrap('globex');
  url = await h.cp.listen();
});
afterAll(async () => {
  await h?.close();
  rmSync(keyDir, { recursive: true, force: true });
});

// --- helpers ---

type Label = { key: string; value: string };

async function enrollmentToken(org: BootstrapResult, input: { name?: string; labels?: Label[]; maxUses?: number; expiresInHours?: number } = {}, token = org.token): Promise<{ token: string; id: string }> {
  const r = await h.gql<{ createEnrollmentToken: { token: string; enrollmentToken: { id: string } } }>(token,
    'mutation($i: CreateEnrollmentTokenInput!) { createEnrollmentToken(input: $i) { token enrollmentToken { id } } }', { i: { name: 'test', ...input } });
  expect(r.errors).toBeUndefined();
  issuedTokens.push(r.data!.createEnrollmentToken.token);
  return { token: r.data!.createEnrollmentToken.token, id: r.data!.createEnrollmentToken.enrollmentToken.id };
}

const NO_RETRY = { maxAttempts: 1 };

function enrollBody(token: string, identity: AgentIdentity, extra: Partial<EnrollRequest> = {}): EnrollRequest {
  return { token, publicJwk: identity.publicJwk, hostname: 'db-01.example.test', os: 'linux', arch: 'x64', version: '0.5.0', ...extra };
}

interface Enrolled { client: ControlPlaneClient; identity: AgentIdentity; agentId: string; orgId: string; credential: string }

async function enrolled(org: BootstrapResult, labels: Label[] = []): Promise<Enrolled> {
  const { token } = await enrollmentToken(org, { labels });
  const identity = generateAgentIdentity();
  const client = new ControlPlaneClient({ url, identity });
  const answer = await client.enroll(enrollBody(token, identity), NO_RETRY);
  return { client, identity, agentId: answer.agentId, orgId: answer.orgId, credential: answer.credential };
}

/** What the client throws (it never retries a 4xx). */
async function refusal(call: Promise<unknown>): Promise<ControlPlaneRequestError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ControlPlaneRequestError) return err;
    throw err;
  }
  throw new Error('the call was expected to be refused');
}

const beat: AgentHeartbeatRequest = { version: '0.5.0', hostname: 'db-01.example.test', os: 'linux', arch: 'x64', uptimeSeconds: 3600, load: [0.5, 0.25, 0.125], freeBytes: 10_000_000_000, runningJobs: [] };

/** A request made by hand; `proof` says what the DPoP proof covers (defaults: this request). */
async function raw(path: string, options: {
  method?: string; body?: unknown; identity?: AgentIdentity; credential?: string; authorization?: string | null;
  proof?: { method?: string; url?: string; token?: string; body?: string; nowS?: number } | null; base?: string; headers?: Record<string, string>;
}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const method = options.method ?? 'POST';
  const base = options.base ?? url;
  const body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body ?? beat);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (options.proof !== null && options.identity != null) {
    const p = options.proof ?? {};
    headers.dpop = await createProof(options.identity, { method: p.method ?? method, url: p.url ?? `${base}${path}`, token: p.token ?? options.credential ?? '', body: p.body ?? body }, p.nowS);
  }
  if (options.authorization !== null) {
    const authorization = options.authorization ?? (options.credential != null ? `Agent ${options.credential}` : undefined);
    if (authorization != null) headers.authorization = authorization;
  }
  const response = await fetch(`${base}${path}`, { method, headers, body });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: response.status, json, headers: response.headers };
}

const UNAUTHENTICATED = { error: { code: 'AGENT_UNAUTHENTICATED', message: UNAUTHENTICATED_MESSAGE } };

interface AgentView {
  id: string; status: string; online: boolean; hostname: string; os: string; arch: string; version: string; uptimeSeconds: number | null; load: number[] | null;
  freeBytes: number | null; inventory: unknown[]; labels: Label[]; keyThumbprint: string; enrolledWith: string | null; lastSeenAt: string | null;
}
const AGENT_FIELDS = 'id status online hostname os arch version uptimeSeconds load freeBytes inventory labels { key value } keyThumbprint enrolledWith lastSeenAt';

async function agentView(token: string, id: string): Promise<AgentView> {
  const r = await h.gql<{ agent: AgentView }>(token, `query($id: ID!) { agent(id: $id) { ${AGENT_FIELDS} } }`, { id });
  expect(r.errors).toBeUndefined();
  return r.data!.agent;
}

async function createStore(org: BootstrapResult, agentId: string, kind: 's3' | 'fs', withCredentials: boolean): Promise<{ id: string; storeId: string }> {
  const name = `${kind}-${randomUUID().slice(0, 8)}`;
  const r = await h.gql<{ createStore: { id: string; storeId: string } }>(org.token, 'mutation($i: CreateStoreInput!) { createStore(input: $i) { id storeId } }', {
    i: { name, kind, url: kind === 's3' ? `s3://backups/${name}` : `/srv/${name}`, initAgentId: agentId, ...(withCredentials ? { credentials: S3 } : {}) },
  });
  expect(r.errors).toBeUndefined();
  return r.data!.createStore;
}

async function jobView(org: BootstrapResult, id: string): Promise<{ status: string; attempt: number; progress: unknown; cancelRequested: boolean }> {
  const r = await h.gql<{ job: { status: string; attempt: number; progress: unknown; cancelRequested: boolean } }>(org.token, 'query($id: ID!) { job(id: $id) { status attempt progress cancelRequested } }', { id });
  expect(r.errors).toBeUndefined();
  return r.data!.job;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function verifier(): JobTokenVerifier {
  return new JobTokenVerifier({ issuer: h.config.fleet.jobToken.issuer, audience: h.config.fleet.jobToken.audience, source: { jwksUrl: `${url}${JWKS_PATH}` } });
}

async function auditActions(org: BootstrapResult, actions: string[]): Promise<Array<{ action: string; target: string; payload: unknown }>> {
  const r = await h.gql<{ auditEvents: { edges: Array<{ node: { action: string; target: string; payload: unknown } }> } }>(org.token,
    'query($a: [String!]) { auditEvents(first: 50, filter: { actions: $a }) { edges { node { action target payload } } } }', { a: actions });
  expect(r.errors).toBeUndefined();
  return r.data!.auditEvents.edges.map((e) => e.node);
}

// --- tests ---

describe('enrollment tokens', () => {
  it('are shown once, listed without their secret (Relay, by status), revocable and audited', async () => {
    const created = await enrollmentToken(acme, { name: 'web fleet', labels: [{ key: 'environment', value: 'dev' }], maxUses: 3, expiresInHours: 2 });
    expect(created.token).toMatch(/^arca_enr_[A-Za-z0-9_-]{86}$/);
    const [row] = await h.scratch.owner`SELECT secret_hash FROM enrollment_tokens WHERE id = ${created.id}`;
    expect(Buffer.from(row!.secret_hash as Uint8Array)).toHaveLength(32);
    const list = await h.gql<{ enrollmentTokens: { edges: Array<{ node: { id: string; name: string; maxUses: number; uses: number; status: string; labels: Label[]; expiresAt: string } }>; pageInfo: { hasNextPage: boolean } } }>(acme.token,
      '{ enrollmentTokens(first: 50) { edges { node { id name maxUses uses status labels { key value } expiresAt } } pageInfo { hasNextPage } } }');
    expect(list.errors).toBeUndefined();
    const node = list.data!.enrollmentTokens.edges.find((e) => e.node.id === created.id)!.node;
    expect(node).toMatchObject({ name: 'web fleet', maxUses: 3, uses: 0, status: 'active', labels: [{ key: 'environment', value: 'dev' }] });
    expect(new Date(node.expiresAt).getTime() - Date.now()).toBeGreaterThan(7_000_000);
    expect(JSON.stringify(list.data)).not.toContain(created.token.slice(-20));
    // no field of a listed token can carry the secret
    expect(codesOf(await h.gql(acme.token, '{ enrollmentTokens { edges { node { token } } } }'))).toEqual(['BAD_REQUEST']);

    const revoked = await h.gql<{ revokeEnrollmentToken: { status: string; revokedAt: string } }>(acme.token, 'mutation($id: ID!) { revokeEnrollmentToken(id: $id) { status revokedAt } }', { id: created.id });
    expect(revoked.data!.revokeEnrollmentToken.status).toBe('revoked');
    const byStatus = await h.gql<{ enrollmentTokens: { edges: Array<{ node: { id: string; status: string } }> } }>(acme.token,
      '{ enrollmentTokens(filter: { statuses: ["revoked"] }) { edges { node { id status } } } }');
    expect(byStatus.data!.enrollmentTokens.edges.map((e) => e.node.id)).toContain(created.id);
    expect(byStatus.data!.enrollmentTokens.edges.every((e) => e.node.status === 'revoked')).toBe(true);
    const actions = await auditActions(acme, ['enrollment_token.created', 'enrollment_token.revoked']);
    expect(actions.filter((a) => a.target === `enrollment-token:${created.id}`).map((a) => a.action).sort()).toEqual(['enrollment_token.created', 'enrollment_token.revoked']);
    expect(JSON.stringify(actions)).not.toContain(created.token.slice(9));
    // bad input says what to do
    const bad = await h.gql(acme.token, 'mutation { createEnrollmentToken(input: { name: "x", maxUses: 0 }) { token } }');
    expect(codesOf(bad)).toEqual(['INVALID_INPUT']);
  });

  it('pages newest first with stable cursors', async () => {
    const org = await h.bootstrap();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await enrollmentToken(org, { name: `t${i}` })).id);
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const r: { data: { enrollmentTokens: { edges: Array<{ node: { id: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } | null } = await h.gql(org.token,
        'query($after: String) { enrollmentTokens(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }', { after });
      seen.push(...r.data!.enrollmentTokens.edges.map((e) => e.node.id));
      if (!r.data!.enrollmentTokens.pageInfo.hasNextPage) break;
      after = r.data!.enrollmentTokens.pageInfo.endCursor;
    }
    expect(seen).toEqual([...ids].reverse());
  });

  it('follow the roles: viewers and auditors read them, operators manage them, label-limited roles only inside their labels', async () => {
    const roles = await h.gql<{ roles: Array<{ id: string; name: string }> }>(acme.token, '{ roles { id name } }');
    const tokenOf = async (roleId: string) => {
      const user = await h.gql<{ createUser: { id: string } }>(acme.token, 'mutation($i: CreateUserInput!) { createUser(input: $i) { id } }',
        { i: { email: `u-${randomUUID().slice(0, 8)}@acme.test`, displayName: 'u', roleId } });
      return (await h.tokenFor(acme.orgId, user.data!.createUser.id)).token;
    };
    const byName = (name: string) => roles.data!.roles.find((r) => r.name === name)!.id;
    const create = 'mutation($i: CreateEnrollmentTokenInput!) { createEnrollmentToken(input: $i) { token } }';
    for (const reader of ['viewer', 'auditor']) {
      const t = await tokenOf(byName(reader));
      expect((await h.gql(t, '{ enrollmentTokens { edges { node { id } } } agents { edges { node { id } } } }')).errors).toBeUndefined();
      expect(codesOf(await h.gql(t, create, { i: { name: 'no' } }))).toEqual(['FORBIDDEN']);
    }
    const operator = await tokenOf(byName('operator'));
    expect((await h.gql(operator, create, { i: { name: 'ops' } })).errors).toBeUndefined();

    const custom = await h.gql<{ createRole: { id: string } }>(acme.token,
      'mutation { createRole(input: { name: "dev-fleet", permissions: [{ action: "manage", subject: "Agent", labels: [{ key: "environment", values: ["dev"] }] }] }) { id } }');
    expect(custom.errors).toBeUndefined();
    const dev = await tokenOf(custom.data!.createRole.id);
    expect(codesOf(await h.gql(dev, create, { i: { name: 'prod', labels: [{ key: 'environment', value: 'prod' }] } }))).toEqual(['FORBIDDEN']);
    expect(codesOf(await h.gql(dev, create, { i: { name: 'unlabelled' } }))).toEqual(['FORBIDDEN']);
    expect((await h.gql(dev, create, { i: { name: 'dev', labels: [{ key: 'environment', value: 'dev' }] } })).errors).toBeUndefined();

    const devAgent = await enrolled(acme, [{ key: 'environment', value: 'dev' }]);
    const prodAgent = await enrolled(acme, [{ key: 'environment', value: 'prod' }]);
    const seen = await h.gql<{ agents: { edges: Array<{ node: { id: string } }> } }>(dev, '{ agents(first: 50) { edges { node { id } } } }');
    const ids = seen.data!.agents.edges.map((e) => e.node.id);
    expect(ids).toContain(devAgent.agentId);
    expect(ids).not.toContain(prodAgent.agentId);
    expect(codesOf(await h.gql(dev, 'query($id: ID!) { agent(id: $id) { id } }', { id: prodAgent.agentId }))).toEqual(['NOT_FOUND']);
    expect(codesOf(await h.gql(dev, 'mutation($id: ID!) { disableAgent(id: $id) { id } }', { id: prodAgent.agentId }))).toEqual(['NOT_FOUND']);
    // a dev agent cannot be moved out of the role's perimeter
    const relabel = await h.gql(dev, 'mutation($i: UpdateAgentLabelsInput!) { updateAgentLabels(input: $i) { id } }', { i: { id: devAgent.agentId, labels: [{ key: 'environment', value: 'prod' }] } });
    expect(codesOf(relabel)).toEqual(['FORBIDDEN']);
    const listedTokens = await h.gql<{ enrollmentTokens: { edges: Array<{ node: { labels: Label[] } }> } }>(dev, '{ enrollmentTokens(first: 50) { edges { node { labels { key value } } } } }');
    expect(listedTokens.data!.enrollmentTokens.edges.length).toBeGreaterThan(0);
    expect(listedTokens.data!.enrollmentTokens.edges.every((e) => e.node.labels.some((l) => l.key === 'environment' && l.value === 'dev'))).toBe(true);
  });
});

describe('POST /agent/v1/enroll', () => {
  it('registers the key that signed the proof; the token\'s labels win over the agent\'s own', async () => {
    const { token, id: tokenId } = await enrollmentToken(acme, { labels: [{ key: 'environment', value: 'dev' }], maxUses: 2 });
    const identity = generateAgentIdentity();
    const client = new ControlPlaneClient({ url, identity });
    const answer = await client.enroll(enrollBody(token, identity, { labels: { environment: 'prod', role: 'db' } }), NO_RETRY);
    expect(answer).toMatchObject({ orgId: acme.orgId, heartbeatSeconds: 15, leaseWaitSeconds: 25 });
    expect(answer.credential).toBe(agentCredential(acme.orgId, answer.agentId));
    const view = await agentView(acme.token, answer.agentId);
    expect(view).toMatchObject({ status: 'active', online: false, hostname: 'db-01.example.test', os: 'linux', arch: 'x64', version: '0.5.0', keyThumbprint: identity.thumbprint, enrolledWith: tokenId, inventory: [] });
    expect(view.labels).toEqual([{ key: 'environment', value: 'dev' }, { key: 'role', value: 'db' }]);
    const audit = await auditActions(acme, ['agent.enrolled']);
    expect(audit.find((a) => a.target === `agent:${answer.agentId}`)?.payload).toMatchObject({ enrollmentTokenId: tokenId, keyThumbprint: identity.thumbprint });
    expect(JSON.stringify(audit)).not.toContain(token.slice(9));
  });

  it('answers a re-enrollment of a registered key with the same agent and uses nothing, even once the token is used up', async () => {
    const { token, id } = await enrollmentToken(acme, { maxUses: 1 });
    const identity = generateAgentIdentity();
    const first = await new ControlPlaneClient({ url, identity }).enroll(enrollBody(token, identity), NO_RETRY);
    const again = await raw(AGENT_API_PATHS.enroll, { body: enrollBody(token, identity), identity, credential: token, authorization: null });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ agentId: first.agentId, orgId: acme.orgId, credential: first.credential });
    const uses = await h.scratch.owner`SELECT uses FROM enrollment_tokens WHERE id = ${id}`;
    expect(uses[0]!.uses).toBe(1);
    const agents = await h.scratch.owner`SELECT count(*)::int AS n FROM agents WHERE key_thumbprint = ${identity.thumbprint}`;
    expect(agents[0]!.n).toBe(1);
    // the first enrollment answered 201
    const fresh = generateAgentIdentity();
    const { token: other } = await enrollmentToken(acme);
    expect((await raw(AGENT_API_PATHS.enroll, { body: enrollBody(other, fresh), identity: fresh, credential: other, authorization: null })).status).toBe(201);
  });

  it('refuses expired, used-up, revoked, forged and unknown tokens and proofs by another key, all with one answer', async () => {
    const refusals: ControlPlaneRequestError[] = [];
    const tryEnroll = async (token: string, identity = generateAgentIdentity()) => {
      const err = await refusal(new ControlPlaneClient({ url, identity }).enroll(enrollBody(token, identity), NO_RETRY));
      refusals.push(err);
      return err;
    };
    const expired = await enrollmentToken(acme);
    await h.scratch.owner`UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE id = ${expired.id}`;
    await tryEnroll(expired.token);

    const single = await enrollmentToken(acme, { maxUses: 1 });
    const firstKey = generateAgentIdentity();
    await new ControlPlaneClient({ url, identity: firstKey }).enroll(enrollBody(single.token, firstKey), NO_RETRY);
    await tryEnroll(single.token);

    const revoked = await enrollmentToken(acme);
    await h.gql(acme.token, 'mutation($id: ID!) { revokeEnrollmentToken(id: $id) { id } }', { id: revoked.id });
    await tryEnroll(revoked.token);

    const good = await enrollmentToken(acme);
    const forged = good.token.slice(0, -4) + (good.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await tryEnroll(forged);
    await tryEnroll(newOpaqueToken(ENROLLMENT_PREFIX, acme.orgId, randomUUID()).token);
    await tryEnroll(newOpaqueToken(ENROLLMENT_PREFIX, randomUUID(), randomUUID()).token);
    await tryEnroll('arca_enr_short');

    for (const err of refusals) {
      expect(err.status).toBe(401);
      expect(err.code).toBe('AGENT_UNAUTHENTICATED');
      expect(err.message).toBe(refusals[0]!.message);
    }

    // the proof must be made by the key being registered
    const registered = generateAgentIdentity();
    const thief = generateAgentIdentity();
    const stolen = await raw(AGENT_API_PATHS.enroll, { body: enrollBody(good.token, registered), identity: thief, credential: good.token, authorization: null });
    expect(stolen).toMatchObject({ status: 401, json: UNAUTHENTICATED });
    const noProof = await raw(AGENT_API_PATHS.enroll, { body: enrollBody(good.token, registered), proof: null, authorization: null });
    expect(noProof).toMatchObject({ status: 401, json: UNAUTHENTICATED });
    // the good token was never used by all this
    const uses = await h.scratch.owner`SELECT uses FROM enrollment_tokens WHERE id = ${good.id}`;
    expect(uses[0]!.uses).toBe(0);
    // a malformed body says what is wrong
    const bad = await raw(AGENT_API_PATHS.enroll, { body: { ...enrollBody(good.token, registered), publicJwk: { kty: 'RSA' } }, identity: registered, credential: good.token, authorization: null });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect(JSON.stringify(bad.json)).toContain('publicJwk');

    const audit = await auditActions(acme, ['agent.enroll_refused']);
    expect(audit.map((a) => (a.payload as { reason: string }).reason)).toEqual(expect.arrayContaining(['expired', 'used up', 'revoked', 'unknown token']));
    // made-up tokens (two were tried) are audited once a minute per organization, not once each
    expect(audit.filter((a) => (a.payload as { reason: string }).reason === 'unknown token')).toHaveLength(1);
    for (let i = 0; i < 5; i++) await tryEnroll(newOpaqueToken(ENROLLMENT_PREFIX, acme.orgId, randomUUID()).token);
    expect((await auditActions(acme, ['agent.enroll_refused'])).length).toBe(audit.length);
  });
});

describe('agent authentication', () => {
  let agent: Enrolled;
  beforeAll(async () => {
    agent = await enrolled(acme);
  });

  it('accepts the agent\'s own proofs and refuses every broken one with one 401', async () => {
    const ok = await raw(AGENT_API_PATHS.heartbeat, { identity: agent.identity, credential: agent.credential });
    expect(ok.status).toBe(200);
    const other = generateAgentIdentity();
    const unknown = agentCredential(acme.orgId, randomUUID());
    const body = JSON.stringify(beat);
    const cases: Array<[string, Parameters<typeof raw>[1]]> = [
      ['no proof', { identity: agent.identity, credential: agent.credential, proof: null }],
      ['no Authorization', { identity: agent.identity, credential: agent.credential, authorization: null }],
      ['another scheme', { identity: agent.identity, credential: agent.credential, authorization: `Bearer ${agent.credential}` }],
      ['a malformed credential', { identity: agent.identity, credential: 'arca_agt_nope' }],
      ['an unknown agent', { identity: agent.identity, credential: unknown }],
      ['the agent of another organization', { identity: agent.identity, credential: agentCredential(globex.orgId, agent.agentId) }],
      ['a proof by another key', { identity: other, credential: agent.credential }],
      ['a proof for another path', { identity: agent.identity, credential: agent.credential, proof: { url: `${url}${AGENT_API_PATHS.inventory}` } }],
      ['a proof for another host', { identity: agent.identity, credential: agent.credential, proof: { url: `https://cp.elsewhere.test${AGENT_API_PATHS.heartbeat}` } }],
      ['a proof for another method', { identity: agent.identity, credential: agent.credential, proof: { method: 'PUT' } }],
      ['a proof over another body', { identity: agent.identity, credential: agent.credential, proof: { body: body.replace('3600', '3601') } }],
      ['a proof for another credential', { identity: agent.identity, credential: agent.credential, proof: { token: unknown } }],
      ['a stale proof', { identity: agent.identity, credential: agent.credential, proof: { nowS: Math.floor(Date.now() / 1000) - 300 } }],
      ['a garbage proof', { identity: agent.identity, credential: agent.credential, proof: null, headers: { dpop: 'not.a.proof' } }],
    ];
    for (const [what, options] of cases) {
      const answer = await raw(AGENT_API_PATHS.heartbeat, options);
      expect({ what, status: answer.status, json: answer.json }).toEqual({ what, status: 401, json: UNAUTHENTICATED });
    }
    // a captured request cannot be replayed
    const dpop = await createProof(agent.identity, { method: 'POST', url: `${url}${AGENT_API_PATHS.heartbeat}`, token: agent.credential, body });
    const send = () => fetch(`${url}${AGENT_API_PATHS.heartbeat}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Agent ${agent.credential}`, dpop }, body });
    expect((await send()).status).toBe(200);
    const replay = await send();
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual(UNAUTHENTICATED);

    // the agent's client with a wrong key gets the same answer
    const impostor = new ControlPlaneClient({ url, identity: other, credential: agent.credential });
    const err = await refusal(impostor.heartbeat(beat, NO_RETRY));
    expect([err.status, err.code]).toEqual([401, 'AGENT_UNAUTHENTICATED']);

    // failures are audited (throttled per agent) with the reason, and logged without credentials
    const audit = await auditActions(acme, ['agent.auth_failed']);
    const mine = audit.filter((a) => a.target === `agent:${agent.agentId}`);
    expect(mine.length).toBeGreaterThanOrEqual(1);
    expect(mine.length).toBeLessThanOrEqual(2);
    expect(h.logs.some((l) => l.includes('agent authentication failed'))).toBe(true);
  });

  it('answers 403 to a disabled agent until it is enabled, 410 once removed (and cancels its queued jobs)', async () => {
    const target = await enrolled(acme);
    const disabled = await h.gql<{ disableAgent: { status: string } }>(acme.token, 'mutation($id: ID!) { disableAgent(id: $id) { status } }', { id: target.agentId });
    expect(disabled.data!.disableAgent.status).toBe('disabled');
    const err = await refusal(target.client.heartbeat(beat, NO_RETRY));
    expect([err.status, err.code]).toEqual([403, 'AGENT_DISABLED']);
    expect((await refusal(target.client.lease(1, 0, NO_RETRY))).status).toBe(403);
    await h.gql(acme.token, 'mutation($id: ID!) { enableAgent(id: $id) { status } }', { id: target.agentId });
    expect((await target.client.heartbeat(beat, NO_RETRY)).cancelJobs).toEqual([]);

    const store = await createStore(acme, target.agentId, 'fs', false);
    const jobs = await h.gql<{ jobs: { edges: Array<{ node: { id: string; storeId: string } }> } }>(acme.token, 'query($a: ID) { jobs(filter: { agentId: $a }) { edges { node { id storeId } } } }', { a: target.agentId });
    const initJob = jobs.data!.jobs.edges.find((e) => e.node.storeId === store.id)!.node.id;
    const removed = await h.gql<{ removeAgent: { status: string } }>(acme.token, 'mutation($id: ID!) { removeAgent(id: $id) { status } }', { id: target.agentId });
    expect(removed.data!.removeAgent.status).toBe('removed');
    const gone = await refusal(target.client.heartbeat(beat, NO_RETRY));
    expect([gone.status, gone.code]).toEqual([410, 'AGENT_REMOVED']);
    expect((await jobView(acme, initJob)).status).toBe('cancelled');
    // a removed agent stays removed: enabling it is refused, its key cannot enroll again
    expect(codesOf(await h.gql(acme.token, 'mutation($id: ID!) { enableAgent(id: $id) { status } }', { id: target.agentId }))).toEqual(['CONFLICT']);
    const { token } = await enrollmentToken(acme);
    const again = await refusal(new ControlPlaneClient({ url, identity: target.identity }).enroll(enrollBody(token, target.identity), NO_RETRY));
    expect([again.status, again.code]).toEqual([410, 'AGENT_REMOVED']);
    const actions = (await auditActions(acme, ['agent.disabled', 'agent.enabled', 'agent.removed'])).filter((a) => a.target === `agent:${target.agentId}`).map((a) => a.action);
    expect(actions.sort()).toEqual(['agent.disabled', 'agent.enabled', 'agent.removed']);
  });

  it('re-keys an agent: the new key is accepted with the same credential, the old one refused', async () => {
    const target = await enrolled(acme);
    const next = generateAgentIdentity();
    const r = await h.gql<{ rekeyAgent: { keyThumbprint: string } }>(acme.token, 'mutation($i: RekeyAgentInput!) { rekeyAgent(input: $i) { keyThumbprint } }', { i: { id: target.agentId, publicKeyX: next.publicJwk.x } });
    expect(r.data!.rekeyAgent.keyThumbprint).toBe(next.thumbprint);
    expect((await refusal(target.client.heartbeat(beat, NO_RETRY))).status).toBe(401);
    const rekeyed = new ControlPlaneClient({ url, identity: next, credential: target.credential });
    expect((await rekeyed.heartbeat(beat, NO_RETRY)).heartbeatSeconds).toBe(15);
    // a key of another agent of the organization is refused
    const other = await enrolled(acme);
    const clash = await h.gql(acme.token, 'mutation($i: RekeyAgentInput!) { rekeyAgent(input: $i) { id } }', { i: { id: target.agentId, publicKeyX: other.identity.publicJwk.x } });
    expect(codesOf(clash)).toEqual(['CONFLICT']);
    expect(codesOf(await h.gql(acme.token, 'mutation($i: RekeyAgentInput!) { rekeyAgent(input: $i) { id } }', { i: { id: target.agentId, publicKeyX: 'short' } }))).toEqual(['INVALID_INPUT']);
  });

  it('refuses bodies over 1 MiB and bodies that do not follow the schema', async () => {
    const big = JSON.stringify({ ...beat, hostname: 'x'.repeat(AGENT_API_MAX_BODY_BYTES) });
    const tooLarge = await raw(AGENT_API_PATHS.heartbeat, { identity: agent.identity, credential: agent.credential, body: big });
    expect(tooLarge).toMatchObject({ status: 413, json: { error: { code: 'TOO_LARGE', message: expect.stringContaining('agent API') } } });
    const enrollTooLarge = await raw(AGENT_API_PATHS.enroll, { body: big, authorization: null });
    expect(enrollTooLarge).toMatchObject({ status: 413, json: { error: { code: 'TOO_LARGE' } } });
    const notJson = await raw(AGENT_API_PATHS.heartbeat, { identity: agent.identity, credential: agent.credential, body: '{"version":' });
    expect(notJson).toMatchObject({ status: 400, json: { error: { code: 'BAD_REQUEST' } } });
    const invalid = await refusal(agent.client.heartbeat({ ...beat, load: [1, 2] } as never, NO_RETRY));
    expect([invalid.status, invalid.code]).toEqual([400, 'BAD_REQUEST']);
    expect(invalid.message).toContain('load');
  });
});

describe('heartbeats and inventory', () => {
  it('a heartbeat makes the agent online with its host facts (written in batches); the inventory replaces the last one', async () => {
    const agent = await enrolled(acme, [{ key: 'site', value: 'lab' }]);
    const answer = await agent.client.heartbeat({ ...beat, hostname: 'db-02.example.test', version: '0.6.0' }, NO_RETRY);
    expect(answer.heartbeatSeconds).toBe(15);
    expect(Math.abs(new Date(answer.serverTime).getTime() - Date.now())).toBeLessThan(5000);
    const view = await waitFor('the beat written', async () => {
      const v = await agentView(acme.token, agent.agentId);
      return v.online ? v : undefined;
    });
    expect(view).toMatchObject({ hostname: 'db-02.example.test', version: '0.6.0', os: 'linux', arch: 'x64', uptimeSeconds: 3600, load: [0.5, 0.25, 0.125], freeBytes: 10_000_000_000 });
    expect(Math.abs(new Date(view.lastSeenAt!).getTime() - Date.now())).toBeLessThan(5000);
    const online = await h.gql<{ agents: { edges: Array<{ node: { id: string } }> } }>(acme.token, '{ agents(first: 50, filter: { online: true, labels: [{ key: "site", value: "lab" }] }) { edges { node { id } } } }');
    expect(online.errors).toBeUndefined();
    expect(online.data!.agents.edges.map((e) => e.node.id)).toEqual([agent.agentId]);
    const offline = await h.gql<{ agents: { edges: Array<{ node: { id: string } }> } }>(acme.token, '{ agents(first: 50, filter: { online: false }) { edges { node { id } } } }');
    expect(offline.data!.agents.edges.map((e) => e.node.id)).not.toContain(agent.agentId);

    expect(await agent.client.inventory({ resources: [{ kind: 'path', path: '/srv/data' }, { kind: 'postgres', database: 'orders', port: 5432 }] }, NO_RETRY)).toEqual({ accepted: 2 });
    expect((await agentView(acme.token, agent.agentId)).inventory).toEqual([{ kind: 'path', path: '/srv/data' }, { kind: 'postgres', database: 'orders', port: 5432 }]);
    expect(await agent.client.inventory({ resources: [{ kind: 'path', path: '/home' }] }, NO_RETRY)).toEqual({ accepted: 1 });
    expect((await agentView(acme.token, agent.agentId)).inventory).toEqual([{ kind: 'path', path: '/home' }]);

    // heartbeats leave no audit trail and no per-beat log line beyond the access log
    const metrics = await h.request({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/arca_cp_agent_heartbeats_total \d+/);
  });

  it('many beats of many agents land in one batched write', async () => {
    const fleet = await Promise.all(Array.from({ length: 5 }, () => enrolled(globex)));
    await Promise.all(fleet.flatMap((a) => [1, 2, 3].map((n) => a.client.heartbeat({ ...beat, uptimeSeconds: n }, NO_RETRY))));
    await h.cp.app.get(HeartbeatWriter).flush();
    const rows = await h.scratch.owner`SELECT uptime_seconds, last_seen_at FROM agents WHERE id IN ${h.scratch.owner(fleet.map((a) => a.agentId))}`;
    expect(rows).toHaveLength(5);
    expect(rows.every((r) => r.last_seen_at != null && Number(r.uptime_seconds) >= 1)).toBe(true);
  });

  it('agents page oldest first; a label-limited reader gets full pages of what it may see', async () => {
    const org = await h.bootstrap();
    const all: Array<{ id: string; env: string }> = [];
    for (let i = 0; i < 7; i++) {
      const env = i % 3 === 0 ? 'dev' : 'prod';
      all.push({ id: (await enrolled(org, [{ key: 'environment', value: env }])).agentId, env });
    }
    const role = await h.gql<{ createRole: { id: string } }>(org.token,
      'mutation { createRole(input: { name: "dev-reader", permissions: [{ action: "read", subject: "Agent", labels: [{ key: "environment", values: ["dev"] }] }] }) { id } }');
    const user = await h.gql<{ createUser: { id: string } }>(org.token, 'mutation($i: CreateUserInput!) { createUser(input: $i) { id } }',
      { i: { email: 'reader@x.test', displayName: 'reader', roleId: role.data!.createRole.id } });
    const reader = (await h.tokenFor(org.orgId, user.data!.createUser.id)).token;
    const pages = async (token: string, size: number) => {
      const out: string[][] = [];
      let after: string | null = null;
      for (;;) {
        const r: { data: { agents: { edges: Array<{ node: { id: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } | null } = await h.gql(token,
          'query($f: Int, $a: String) { agents(first: $f, after: $a) { edges { node { id } } pageInfo { hasNextPage endCursor } } }', { f: size, a: after });
        out.push(r.data!.agents.edges.map((e) => e.node.id));
        if (!r.data!.agents.pageInfo.hasNextPage) return out;
        after = r.data!.agents.pageInfo.endCursor;
      }
    };
    expect((await pages(org.token, 3)).flat()).toEqual(all.map((a) => a.id));
    const dev = all.filter((a) => a.env === 'dev').map((a) => a.id);
    expect(await pages(reader, 2)).toEqual([dev.slice(0, 2), dev.slice(2)]);
    const filtered = await h.gql<{ agents: { edges: Array<{ node: { id: string } }> } }>(org.token, '{ agents(filter: { statuses: ["active"], labels: [{ key: "environment", value: "dev" }] }) { edges { node { id } } } }');
    expect(filtered.data!.agents.edges.map((e) => e.node.id)).toEqual(dev);
    expect(codesOf(await h.gql(org.token, '{ agents(filter: { statuses: ["gone"] }) { edges { node { id } } } }'))).toEqual(['INVALID_INPUT']);
  });

  it('agents of one organization are invisible to another', async () => {
    const agent = await enrolled(acme);
    const list = await h.gql<{ agents: { edges: Array<{ node: { id: string } }> } }>(globex.token, '{ agents(first: 50) { edges { node { id } } } }');
    expect(list.data!.agents.edges.map((e) => e.node.id)).not.toContain(agent.agentId);
    for (const q of ['query($id: ID!) { agent(id: $id) { id } }', 'mutation($id: ID!) { disableAgent(id: $id) { id } }', 'mutation($id: ID!) { removeAgent(id: $id) { id } }']) {
      expect(codesOf(await h.gql(globex.token, q, { id: agent.agentId }))).toEqual(['NOT_FOUND']);
    }
    const tokens = await h.gql<{ enrollmentTokens: { edges: Array<{ node: { id: string } }> } }>(globex.token, '{ enrollmentTokens(first: 50) { edges { node { id } } } }');
    const acmeTokens = await h.scratch.owner`SELECT id FROM enrollment_tokens WHERE org_id = ${acme.orgId}`;
    expect(tokens.data!.enrollmentTokens.edges.map((e) => e.node.id)).not.toEqual(expect.arrayContaining([acmeTokens[0]!.id as string]));
    expect((await agentView(acme.token, agent.agentId)).status).toBe('active');
  });
});

describe('jobs', () => {
  let agent: Enrolled;
  let s3: { id: string; storeId: string };
  let fs: { id: string; storeId: string };

  beforeAll(async () => {
    agent = await enrolled(acme);
  });

  async function leaseOne(waitSeconds = 10): Promise<LeasedJob> {
    const { jobs } = await agent.client.lease(1, waitSeconds, NO_RETRY);
    expect(jobs).toHaveLength(1);
    return jobs[0]!;
  }

  it('a long poll wakes as soon as a job is queued through GraphQL, with the store\'s credentials and a job token bound to the agent key', async () => {
    expect((await agent.client.lease(2, 0, NO_RETRY)).jobs).toEqual([]);
    const started = Date.now();
    const polling = agent.client.lease(2, 20, NO_RETRY);
    await new Promise((r) => setTimeout(r, 300));
    s3 = await createStore(acme, agent.agentId, 's3', true);
    const { jobs } = await polling;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!;
    expect(job).toMatchObject({ kind: 'init', attempt: 1, leaseSeconds: 60, spec: {}, store: { id: s3.id, storeId: s3.storeId, url: expect.stringMatching(/^s3:\/\/backups\//), keyProxyUrl: 'https://kp.example.test', credentials: S3 } });
    expect(job.copyStore).toBeUndefined();
    expect(job.copyToken).toBeUndefined();
    issuedTokens.push(job.token);
    const claims = await verifier().verify(job.token);
    expect(claims).toMatchObject({ org: acme.orgId, agent: agent.agentId, store: s3.storeId, job: job.id, ops: ['init'], cnf: { jkt: agent.identity.thumbprint } });

    // job heartbeat: the job runs, its progress is visible; another attempt or agent has lost the lease
    const renewed = await agent.client.jobHeartbeat(job.id, { attempt: 1, progress: { phase: 'init', percent: 50 }, logs: [{ time: new Date().toISOString(), level: 'info', message: 'creating the master key' }] }, NO_RETRY);
    expect(renewed.cancelRequested).toBe(false);
    expect(new Date(renewed.leaseExpiresAt).getTime()).toBeGreaterThan(Date.now() + 50_000);
    expect(await jobView(acme, job.id)).toMatchObject({ status: 'running', progress: { phase: 'init', percent: 50 } });
    const stale = await refusal(agent.client.jobHeartbeat(job.id, { attempt: 2 }, NO_RETRY));
    expect([stale.status, stale.code]).toEqual([409, 'LEASE_LOST']);
    const stranger = await enrolled(acme);
    expect((await refusal(stranger.client.jobHeartbeat(job.id, { attempt: 1 }, NO_RETRY))).code).toBe('LEASE_LOST');
    expect((await refusal(stranger.client.complete(job.id, { attempt: 1, outcome: 'succeeded' }, NO_RETRY))).code).toBe('LEASE_LOST');
    expect((await refusal(agent.client.jobHeartbeat(randomUUID(), { attempt: 1 }, NO_RETRY))).code).toBe('LEASE_LOST');

    // fresh tokens for the same attempt only
    const refreshed = await agent.client.jobToken(job.id, 1, NO_RETRY);
    issuedTokens.push(refreshed.token);
    expect(await verifier().verify(refreshed.token)).toMatchObject({ job: job.id, ops: ['init'], cnf: { jkt: agent.identity.thumbprint } });
    expect((await refusal(agent.client.jobToken(job.id, 2, NO_RETRY))).status).toBe(409);

    // completion is idempotent; a stale attempt is refused
    expect(await agent.client.complete(job.id, { attempt: 1, outcome: 'succeeded', result: { created: true } }, NO_RETRY)).toEqual({ recorded: true, duplicate: false });
    expect(await agent.client.complete(job.id, { attempt: 1, outcome: 'succeeded', result: { created: true } }, NO_RETRY)).toEqual({ recorded: true, duplicate: true });
    expect((await refusal(agent.client.complete(job.id, { attempt: 2, outcome: 'succeeded' }, NO_RETRY))).status).toBe(409);
    expect((await jobView(acme, job.id)).status).toBe('succeeded');
    await waitFor('the store ready', async () => {
      const r = await h.gql<{ store: { status: string } }>(acme.token, 'query($id: ID!) { store(id: $id) { status } }', { id: s3.id });
      return r.data!.store.status === 'ready' ? true : undefined;
    });
    // after the job, no more tokens
    expect((await refusal(agent.client.jobToken(job.id, 1, NO_RETRY))).code).toBe('LEASE_LOST');
  });

  it('a check started through GraphQL wakes the poll; cancelling it reaches the agent through both heartbeats', async () => {
    fs = await createStore(acme, agent.agentId, 'fs', false);
    const init = await leaseOne();
    expect(init.store).toMatchObject({ id: fs.id, credentials: null });
    await agent.client.complete(init.id, { attempt: 1, outcome: 'succeeded' }, NO_RETRY);
    await waitFor('the fs store ready', async () => {
      const r = await h.gql<{ store: { status: string } }>(acme.token, 'query($id: ID!) { store(id: $id) { status } }', { id: fs.id });
      return r.data!.store.status === 'ready' ? true : undefined;
    });

    const started = Date.now();
    const polling = agent.client.lease(1, 20, NO_RETRY);
    await new Promise((r) => setTimeout(r, 300));
    const check = await h.gql<{ startCheck: { id: string } }>(acme.token, 'mutation($i: StartCheckInput!) { startCheck(input: $i) { id } }', { i: { storeId: s3.id, readData: true, subsetPercent: 10 } });
    expect(check.errors).toBeUndefined();
    const { jobs } = await polling;
    expect(Date.now() - started).toBeLessThan(5000);
    const job = jobs[0]!;
    expect(job).toMatchObject({ id: check.data!.startCheck.id, kind: 'check', spec: { readData: true, subsetPercent: 10 }, store: { id: s3.id, credentials: S3 } });
    issuedTokens.push(job.token);
    expect((await verifier().verify(job.token)).ops).toEqual(['check']);

    expect((await agent.client.heartbeat({ ...beat, runningJobs: [job.id] }, NO_RETRY)).cancelJobs).toEqual([]);
    const cancelled = await h.gql<{ cancelJob: { cancelRequested: boolean } }>(acme.token, 'mutation($id: ID!) { cancelJob(id: $id) { cancelRequested } }', { id: job.id });
    expect(cancelled.data!.cancelJob.cancelRequested).toBe(true);
    expect((await agent.client.heartbeat({ ...beat, runningJobs: [job.id] }, NO_RETRY)).cancelJobs).toEqual([job.id]);
    expect((await agent.client.jobHeartbeat(job.id, { attempt: 1 }, NO_RETRY)).cancelRequested).toBe(true);
    expect(await agent.client.complete(job.id, { attempt: 1, outcome: 'cancelled' }, NO_RETRY)).toEqual({ recorded: true, duplicate: false });
    expect((await jobView(acme, job.id)).status).toBe('cancelled');
    // a job the control plane does not know as running on this agent is to be stopped
    const unknown = randomUUID();
    expect((await agent.client.heartbeat({ ...beat, runningJobs: [unknown] }, NO_RETRY)).cancelJobs).toEqual([unknown]);
  });

  it('runPolicyNow wakes the poll; the replicate follow-up carries both stores and a token for each', async () => {
    const resource = await h.gql<{ createResource: { id: string } }>(acme.token, 'mutation($i: CreateResourceInput!) { createResource(input: $i) { id } }', {
      i: { agentId: agent.agentId, name: `data-${randomUUID().slice(0, 6)}`, kind: 'path', paths: ['/srv/data'], labels: [{ key: 'tier', value: 'gold' }] },
    });
    expect(resource.errors).toBeUndefined();
    const policy = await h.gql<{ createPolicy: { id: string } }>(acme.token, 'mutation($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', {
      i: { name: `gold-${randomUUID().slice(0, 6)}`, schedule: '0 2 * * *', rpoMinutes: 1440, storeId: s3.id, copyStoreId: fs.id, selector: [{ key: 'tier', values: ['gold'] }] },
    });
    expect(policy.errors).toBeUndefined();
    const polling = agent.client.lease(1, 20, NO_RETRY);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const run = await h.gql<{ runPolicyNow: Array<{ id: string }> }>(acme.token, 'mutation($p: ID!) { runPolicyNow(policyId: $p) { id } }', { p: policy.data!.createPolicy.id });
    expect(run.errors).toBeUndefined();
    const backup = (await polling).jobs[0]!;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(backup).toMatchObject({ id: run.data!.runPolicyNow[0]!.id, kind: 'backup', spec: { resourceId: resource.data!.createResource.id, paths: ['/srv/data'] }, store: { id: s3.id, credentials: S3 } });
    expect(backup.copyStore).toBeUndefined();
    const snapshotId = randomBytes(32).toString('hex');
    await agent.client.complete(backup.id, {
      attempt: 1, outcome: 'succeeded',
      snapshots: [
        { storeId: s3.storeId, snapshotId, time: new Date().toISOString(), hostname: 'db-01', tags: ['nightly'], totalBytes: 10, fileCount: 1, dirCount: 1, newBytes: 10, storedBytes: 12, durationMs: 5 },
        // a store the job does not name: never cataloged
        { storeId: randomBytes(32).toString('hex'), snapshotId: randomBytes(32).toString('hex'), time: new Date().toISOString(), hostname: 'db-01', tags: [], totalBytes: 1, fileCount: 1, dirCount: 1, newBytes: 1, storedBytes: 1, durationMs: 1 },
      ],
    }, NO_RETRY);
    const catalog = await h.gql<{ snapshots: { edges: Array<{ node: Record<string, unknown> }> } }>(acme.token,
      'query($f: SnapshotFilter) { snapshots(first: 10, filter: $f) { edges { node { snapshotId hostname tags totalBytes fileCount storedBytes } } } }', { f: { resourceId: resource.data!.createResource.id } });
    expect(catalog.data!.snapshots.edges.map((e) => e.node)).toEqual([{ snapshotId, hostname: 'db-01', tags: ['nightly'], totalBytes: 10, fileCount: 1, storedBytes: 12 }]);
    expect((await jobView(acme, backup.id)).status).toBe('succeeded');

    const replicate = await leaseOne();
    expect(replicate).toMatchObject({ kind: 'replicate', spec: { snapshotIds: [snapshotId] }, store: { id: s3.id, credentials: S3 }, copyStore: { id: fs.id, storeId: fs.storeId, credentials: null } });
    issuedTokens.push(replicate.token, replicate.copyToken!);
    const v = verifier();
    expect(await v.verify(replicate.token)).toMatchObject({ store: s3.storeId, ops: ['restore'], cnf: { jkt: agent.identity.thumbprint } });
    expect(await v.verify(replicate.copyToken!)).toMatchObject({ store: fs.storeId, ops: ['backup'], cnf: { jkt: agent.identity.thumbprint } });
    const refreshed = await agent.client.jobToken(replicate.id, 1, NO_RETRY);
    issuedTokens.push(refreshed.token, refreshed.copyToken!);
    expect((await v.verify(refreshed.copyToken!)).store).toBe(fs.storeId);
    await agent.client.complete(replicate.id, { attempt: 1, outcome: 'succeeded', snapshots: [] }, NO_RETRY);
  });

  it('an empty long poll answers after waitSeconds', async () => {
    const started = Date.now();
    expect((await agent.client.lease(1, 1, NO_RETRY)).jobs).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(4000);
    const tooLong = await raw(AGENT_API_PATHS.lease, { identity: agent.identity, credential: agent.credential, body: { slots: 1, waitSeconds: 31 } });
    expect(tooLong.status).toBe(400);
  });
});

describe('secrets', () => {
  it('no enrollment token, agent credential, store secret or job token appears in the logs', () => {
    const logs = h.logs.join('');
    expect(issuedTokens.length).toBeGreaterThan(10);
    for (const token of issuedTokens) expect(logs).not.toContain(token.slice(-40));
    expect(logs).not.toContain(S3.secretAccessKey);
    expect(logs).not.toContain('arca_agt_');
    expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });
});

describe('behind a load balancer (ARCA_CP_PUBLIC_URL) and at shutdown', () => {
  let lb: Harness;
  let direct: string;
  const PUBLIC = 'https://cp.example.test';
  const dir = mkdtempSync(join(tmpdir(), 'arca-agent-api-lb-'));

  beforeAll(async () => {
    lb = await startHarness({ ...keyEnv(dir), ARCA_CP_PORT: '0', ARCA_CP_SCHEDULER_TICK_SECONDS: '3600', ARCA_CP_PUBLIC_URL: PUBLIC });
    direct = await lb.cp.listen();
  });
  afterAll(async () => {
    await lb?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('checks proofs against the public URL, and answers waiting long polls at once when the app stops', async () => {
    const org = await lb.bootstrap('lb');
    const created = await lb.gql<{ createEnrollmentToken: { token: string } }>(org.token, 'mutation { createEnrollmentToken(input: { name: "lb" }) { token } }');
    const token = created.data!.createEnrollmentToken.token;
    const identity = generateAgentIdentity();
    // a proof for the address the request really went to is refused: the agent must name the public URL
    const wrong = await raw(AGENT_API_PATHS.enroll, { base: direct, body: enrollBody(token, identity), identity, credential: token, authorization: null });
    expect(wrong).toMatchObject({ status: 401, json: UNAUTHENTICATED });
    const enrolledAnswer = await raw(AGENT_API_PATHS.enroll, { base: direct, body: enrollBody(token, identity), identity, credential: token, authorization: null, proof: { url: `${PUBLIC}${AGENT_API_PATHS.enroll}` } });
    expect(enrolledAnswer.status).toBe(201);
    const credential = (enrolledAnswer.json as { credential: string }).credential;

    const leaseBody = JSON.stringify({ slots: 1, waitSeconds: 30 });
    const polling = raw(AGENT_API_PATHS.lease, { base: direct, body: leaseBody, identity, credential, proof: { url: `${PUBLIC}${AGENT_API_PATHS.lease}` } });
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    await lb.cp.close();
    const answer = await polling;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(answer).toMatchObject({ status: 200, json: { jobs: [] } });
  });
});
