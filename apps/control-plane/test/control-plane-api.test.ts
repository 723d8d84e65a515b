import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { GraphQLSchemaHost } from '@nestjs/graphql';
import { isObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultRows } from '@arca/db';
import type { BootstrapResult } from '../src/organizations/organization.service.ts';
import { codesOf, startHarness, type Harness } from './support/control-plane-harness.ts';

// Medium tier: one control plane on a fresh Postgres database (dropped after), driven through
// GraphQL and HTTP exactly as clients do. Each audit-tampering case gets its own organization.
const KEY_PROXY_TOKEN = 'kp-audit-token-for-tests-0123456789';
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

let h: Harness;
let acme: BootstrapResult;
let globex: BootstrapResult;

beforeAll(async () => {
  h = await startHarness({
    ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256: sha256(KEY_PROXY_TOKEN),
    ARCA_CP_MAX_BODY_BYTES: '65536',
    ARCA_CP_GRAPHQL_MAX_DEPTH: '4',
    ARCA_CP_GRAPHQL_MAX_COMPLEXITY: '500',
  });
  acme = await h.bootstrap('acme');
  globex = await h.bootstrap('globex');
});
afterAll(async () => h?.close());

async function roleIds(token: string): Promise<Record<string, string>> {
  const r = await h.gql<{ roles: Array<{ id: string; name: string }> }>(token, '{ roles { id name } }');
  return Object.fromEntries(r.data!.roles.map((role) => [role.name, role.id]));
}

async function addUser(token: string, email: string, roleId: string): Promise<string> {
  const r = await h.gql<{ createUser: { id: string } }>(token, 'mutation($i: CreateUserInput!) { createUser(input: $i) { id } }', { i: { email, displayName: email, roleId } });
  expect(r.errors).toBeUndefined();
  return r.data!.createUser.id;
}

describe('permission declarations', () => {
  it('every field of the schema states its permission (schema walk)', () => {
    const schema = h.cp.app.get(GraphQLSchemaHost).schema;
    const unguarded: string[] = [];
    for (const type of Object.values(schema.getTypeMap())) {
      if (!isObjectType(type) || type.name.startsWith('__')) continue;
      const root = type === schema.getQueryType() || type === schema.getMutationType() || type === schema.getSubscriptionType();
      for (const field of Object.values(type.getFields())) {
        const own = field.extensions?.permission;
        const inherited = root ? undefined : type.extensions?.permission;
        if (typeof own !== 'string' && typeof inherited !== 'string') unguarded.push(`${type.name}.${field.name}`);
      }
    }
    expect(unguarded).toEqual([]);
    expect(Object.keys(schema.getQueryType()!.getFields()).length).toBeGreaterThan(5);
  });
});

describe('tenancy', () => {
  it('GraphQL shows only the caller\'s organization', async () => {
    const r = await h.gql<{ organization: { id: string }; users: { edges: Array<{ node: { id: string } }> } }>(acme.token, '{ organization { id } users { edges { node { id } } } }');
    expect(r.data!.organization.id).toBe(acme.orgId);
    expect(r.data!.users.edges.map((e) => e.node.id)).toEqual([acme.userId]);
    const other = await h.gql(acme.token, 'query($id: ID!) { user(id: $id) { id } }', { id: globex.userId });
    expect(codesOf(other)).toEqual(['NOT_FOUND']);
    const globexRoles = await roleIds(globex.token);
    const move = await h.gql(acme.token, 'mutation($u: ID!, $r: ID!) { setUserRole(userId: $u, roleId: $r) { createdAt } }', { u: acme.userId, r: globexRoles.viewer });
    expect(codesOf(move)).toEqual(['NOT_FOUND']);
  });

  it('an unscoped raw query as the app role returns only the tenant\'s rows', async () => {
    for (const table of ['organizations', 'users', 'roles', 'memberships', 'api_tokens', 'audit_events']) {
      const column = table === 'organizations' ? 'id' : 'org_id';
      const rows = await h.cp.db.withTenant(acme.orgId, async (tx) => resultRows<{ org: string }>(await tx.execute(sql.raw(`SELECT ${column} AS org FROM ${table}`))));
      expect(rows.length, table).toBeGreaterThan(0);
      expect(new Set(rows.map((r) => r.org)), table).toEqual(new Set([acme.orgId]));
    }
  });
});

describe('built-in roles', () => {
  const OPS: Record<string, [string, Record<string, unknown>?]> = {
    readOrganization: ['{ organization { id } }'],
    readUsers: ['{ users { edges { node { id } } } memberships { user { id } role { name } } }'],
    readAudit: ['{ auditEvents(first: 1) { edges { node { seq } } } }'],
    verifyAudit: ['{ verifyAuditChain { valid } }'],
    listTokens: ['{ apiTokens { id } }'],
    createToken: ['mutation { createApiToken(input: { name: "t", scopes: ["read:User"] }) { token } }'],
    createRole: ['mutation($n: String!) { createRole(input: { name: $n, permissions: [{ action: "read", subject: "User" }] }) { id } }'],
    createUser: ['mutation($e: String!, $r: ID!) { createUser(input: { email: $e, displayName: "x", roleId: $r }) { id } }'],
    updateOrganization: ['mutation { updateOrganization(input: { name: "Renamed" }) { name } }'],
  };
  const ALLOWED: Record<string, string[]> = {
    owner: Object.keys(OPS),
    admin: Object.keys(OPS).filter((op) => op !== 'updateOrganization'),
    operator: ['readOrganization', 'readUsers', 'listTokens', 'createToken'],
    auditor: ['readOrganization', 'readUsers', 'readAudit', 'verifyAudit', 'listTokens', 'createToken'],
    viewer: ['readOrganization', 'readUsers'],
  };

  it('each role is allowed exactly its operations; refusals are FORBIDDEN and audited', async () => {
    const org = await h.bootstrap('matrix');
    const roles = await roleIds(org.token);
    let n = 0;
    for (const [role, allowed] of Object.entries(ALLOWED)) {
      const userId = role === 'owner' ? org.userId : await addUser(org.token, `${role}@matrix.test`, roles[role]!);
      const { token } = await h.tokenFor(org.orgId, userId);
      const outcome: Record<string, string> = {};
      for (const [op, [query]] of Object.entries(OPS)) {
        const r = await h.gql(token, query, { n: `r-${role}-${n++}`, e: `u${n++}@matrix.test`, r: roles.viewer });
        outcome[op] = r.errors == null ? 'allowed' : codesOf(r).join(',');
      }
      const expected = Object.fromEntries(Object.keys(OPS).map((op) => [op, allowed.includes(op) ? 'allowed' : 'FORBIDDEN']));
      expect(outcome, role).toEqual(expected);
    }
    const denials = await h.gql<{ auditEvents: { edges: unknown[] } }>(org.token, '{ auditEvents(first: 100, filter: { actions: ["authz.denied"] }) { edges { node { seq } } } }');
    const expectedDenials = Object.values(ALLOWED).reduce((sum, allowed) => sum + Object.keys(OPS).length - allowed.length, 0);
    expect(denials.data!.auditEvents.edges).toHaveLength(expectedDenials);
  });

  it('no one grants what they do not hold; the last owner stays', async () => {
    const org = await h.bootstrap('escalation');
    const roles = await roleIds(org.token);
    const adminId = await addUser(org.token, 'admin@esc.test', roles.admin!);
    const { token: admin } = await h.tokenFor(org.orgId, adminId);
    const toOwner = await h.gql(admin, 'mutation($u: ID!, $r: ID!) { setUserRole(userId: $u, roleId: $r) { createdAt } }', { u: adminId, r: roles.owner });
    expect(codesOf(toOwner)).toEqual(['FORBIDDEN']);
    const godRole = await h.gql(admin, 'mutation { createRole(input: { name: "god", permissions: [{ action: "manage", subject: "all" }] }) { id } }');
    expect(codesOf(godRole)).toEqual(['FORBIDDEN']);
    const removeOwner = await h.gql(admin, 'mutation($u: ID!) { deleteUser(id: $u) }', { u: org.userId });
    expect(codesOf(removeOwner)).toEqual(['FORBIDDEN']);
    const custom = await h.gql<{ createRole: { id: string; permissions: Array<{ labels: Array<{ key: string; values: string[] }> }> } }>(admin,
      'mutation { createRole(input: { name: "prod-eu-operator", permissions: [{ action: "manage", subject: "Store", labels: [{ key: "environment", values: ["prod"] }, { key: "perimeter", values: ["eu"] }] }] }) { id permissions { labels { key values } } } }');
    expect(custom.errors).toBeUndefined();
    expect(custom.data!.createRole.permissions[0]!.labels).toEqual([{ key: 'environment', values: ['prod'] }, { key: 'perimeter', values: ['eu'] }]);
    const badLabel = await h.gql(admin, 'mutation { createRole(input: { name: "x-bad", permissions: [{ action: "read", subject: "Store", labels: [{ key: "colour", values: ["red"] }] }] }) { id } }');
    expect(codesOf(badLabel)).toEqual(['INVALID_INPUT']);
    await addUser(org.token, 'store-op@esc.test', custom.data!.createRole.id);
    const inUse = await h.gql(admin, 'mutation($id: ID!) { deleteRole(id: $id) }', { id: custom.data!.createRole.id });
    expect(codesOf(inUse)).toEqual(['CONFLICT']);
    const demoteSelf = await h.gql(org.token, 'mutation($u: ID!, $r: ID!) { setUserRole(userId: $u, roleId: $r) { createdAt } }', { u: org.userId, r: roles.viewer });
    expect(codesOf(demoteSelf)).toEqual(['CONFLICT']);
  });
});

describe('API tokens', () => {
  it('created once, scoped, expiring and revocable', async () => {
    const created = await h.gql<{ createApiToken: { token: string; apiToken: { id: string; scopes: string[] } } }>(acme.token,
      'mutation { createApiToken(input: { name: "siem", scopes: ["read:AuditEvent"], expiresInDays: 7 }) { token apiToken { id scopes } } }');
    const { token, apiToken } = created.data!.createApiToken;
    expect(apiToken.scopes).toEqual(['read:AuditEvent']);
    expect((await h.gql(token, '{ auditEvents(first: 1) { edges { cursor } } }')).errors).toBeUndefined();
    expect(codesOf(await h.gql(token, '{ users { edges { cursor } } }'))).toEqual(['FORBIDDEN']);
    expect(codesOf(await h.gql(token, 'mutation { updateOrganization(input: { name: "x" }) { id } }'))).toEqual(['FORBIDDEN']);
    const revoked = await h.gql(acme.token, 'mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }', { id: apiToken.id });
    expect(revoked.errors).toBeUndefined();
    expect(codesOf(await h.gql(token, '{ viewer { userId } }'))).toEqual(['UNAUTHENTICATED']);

    const expired = await h.tokenFor(acme.orgId, acme.userId, { expiresAt: new Date(Date.now() - 1000) });
    expect(codesOf(await h.gql(expired.token, '{ viewer { userId } }'))).toEqual(['UNAUTHENTICATED']);
    const tampered = `${token.slice(0, -4)}AAAA`;
    expect(codesOf(await h.gql(tampered, '{ viewer { userId } }'))).toEqual(['UNAUTHENTICATED']);
    expect(codesOf(await h.gql('not-a-token', '{ viewer { userId } }'))).toEqual(['UNAUTHENTICATED']);
    expect(codesOf(await h.gql(null, '{ viewer { userId } }'))).toEqual(['UNAUTHENTICATED']);
    const overScoped = await h.gql(acme.token, 'mutation { createApiToken(input: { name: "x", scopes: ["fly:User"] }) { token } }');
    expect(codesOf(overScoped)).toEqual(['INVALID_INPUT']);
    expect(h.logs.join('')).not.toContain(token.slice(9));
  });
});

describe('audit log', () => {
  it('paginates with Relay cursors, filters and sorts', async () => {
    const org = await h.bootstrap('paging');
    for (let i = 0; i < 5; i++) await h.gql(org.token, `mutation { createRole(input: { name: "role-${i}", permissions: [] }) { id } }`);
    const q = 'query($a: String, $f: AuditEventFilter, $o: AuditEventOrder) { auditEvents(first: 2, after: $a, filter: $f, orderBy: $o) { edges { cursor node { seq action } } pageInfo { hasNextPage endCursor } } }';
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const r: { data: { auditEvents: { edges: Array<{ node: { seq: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string } } } | null } =
        await h.gql(org.token, q, { a: after, f: { actions: ['role.created'] }, o: { field: 'TIME', direction: 'ASC' } }) as never;
      seen.push(...r.data!.auditEvents.edges.map((e) => e.node.seq));
      if (!r.data!.auditEvents.pageInfo.hasNextPage) break;
      after = r.data!.auditEvents.pageInfo.endCursor;
    }
    expect(seen).toHaveLength(5);
    expect([...seen].sort((a, b) => Number(a) - Number(b))).toEqual(seen);
    expect(codesOf(await h.gql(org.token, q, { a: 'bogus' }))).toEqual(['INVALID_INPUT']);
  });

  it('stays a valid chain under concurrent mutations', async () => {
    const org = await h.bootstrap('concurrent');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => h.gql(org.token, `mutation { createRole(input: { name: "p-${i}", permissions: [] }) { id } }`)));
    expect(results.flatMap(codesOf)).toEqual([]);
    const v = await h.gql<{ verifyAuditChain: { valid: boolean; checkedEvents: number } }>(org.token, '{ verifyAuditChain { valid checkedEvents } }');
    expect(v.data!.verifyAuditChain.valid).toBe(true);
    expect(v.data!.verifyAuditChain.checkedEvents).toBeGreaterThanOrEqual(21);
  });

  const TAMPERING: Array<[string, (org: string) => Promise<unknown>, string, string]> = [
    ['an edited entry', (org) => h.scratch.owner`UPDATE audit_events SET payload = '{"name":"forged"}' WHERE org_id = ${org} AND seq = 2`, 'ENTRY_MODIFIED', '2'],
    ['a deleted entry', (org) => h.scratch.owner`DELETE FROM audit_events WHERE org_id = ${org} AND seq = 2`, 'ENTRIES_MISSING', '2'],
    ['reordered entries', (org) => h.scratch.owner.begin(async (tx) => {
      await tx`UPDATE audit_events SET seq = 1000000 WHERE org_id = ${org} AND seq = 2`;
      await tx`UPDATE audit_events SET seq = 2 WHERE org_id = ${org} AND seq = 3`;
      await tx`UPDATE audit_events SET seq = 3 WHERE org_id = ${org} AND seq = 1000000`;
    }), 'ENTRY_MODIFIED', '2'],
    ['a truncated tail', (org) => h.scratch.owner`DELETE FROM audit_events WHERE org_id = ${org} AND seq = (SELECT max(seq) FROM audit_events WHERE org_id = ${org})`, 'HEAD_MISMATCH', '4'],
  ];
  for (const [what, tamper, problem, seq] of TAMPERING) {
    it(`verify detects ${what}`, async () => {
      const org = await h.bootstrap();
      for (const name of ['a-1', 'a-2', 'a-3']) await h.gql(org.token, `mutation { createRole(input: { name: "${name}", permissions: [] }) { id } }`);
      const { token } = await h.tokenFor(org.orgId, org.userId, { scopes: ['verify:AuditEvent'] });
      // the first use of a token is audited: use it once before the chain is measured
      const before = await h.gql<{ verifyAuditChain: { valid: boolean } }>(token, '{ verifyAuditChain { valid } }');
      expect(before.data!.verifyAuditChain.valid).toBe(true);
      await tamper(org.orgId);
      const after = await h.gql<{ verifyAuditChain: { valid: boolean; problem: string; firstInvalidSeq: string } }>(token, '{ verifyAuditChain { valid problem firstInvalidSeq message } }');
      expect(after.data!.verifyAuditChain).toMatchObject({ valid: false, problem, ...(problem === 'HEAD_MISMATCH' ? {} : { firstInvalidSeq: seq }) });
    });
  }
});

describe('key proxy audit ingestion', () => {
  const event = (seq: number, org: string | null) => ({
    seq, time: '2026-01-02T03:04:05.000Z', org, agent: 'agent-1', store: 'a'.repeat(64), job: 'job-1', operation: 'keys', purpose: 'write',
    blobKeys: 120, fileKeys: 2, outcome: 'success', requestId: `kp-${seq}`, agentKeyThumbprint: 'thumb', proxy: 'kp-1', hash: 'f'.repeat(64), tokenId: 'jti-1',
  });
  const post = (token: string, body: unknown) => h.request({ method: 'POST', url: '/v1/audit/key-proxy-events', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) });

  it('stores issuance events in the organization\'s chain, once', async () => {
    const org = await h.bootstrap('kp');
    const body = { proxy: 'kp-1', events: [event(1, org.orgId), event(2, org.orgId), event(3, null), event(4, '00000000-0000-4000-8000-000000000000')] };
    const first = await post(KEY_PROXY_TOKEN, body);
    expect([first.status, first.json()]).toEqual([200, { accepted: 2, duplicates: 0, unattributed: 2 }]);
    expect((await post(KEY_PROXY_TOKEN, body)).json()).toEqual({ accepted: 0, duplicates: 2, unattributed: 2 });
    const r = await h.gql<{ auditEvents: { edges: Array<{ node: { actor: string; target: string; payload: Record<string, unknown> } }> } }>(org.token,
      '{ auditEvents(filter: { actions: ["key-proxy.keys"] }) { edges { node { actor target payload } } } verifyAuditChain { valid } }');
    expect(r.data!.auditEvents.edges).toHaveLength(2);
    expect(r.data!.auditEvents.edges[0]!.node).toMatchObject({ actor: 'key-proxy:kp-1', target: `store:${'a'.repeat(64)}`, payload: { blobKeys: 120, outcome: 'success', proxySeq: 2 } });
    expect((r.data as unknown as { verifyAuditChain: { valid: boolean } }).verifyAuditChain.valid).toBe(true);
  });

  it('refuses a wrong credential and malformed batches', async () => {
    const wrong = await post('wrong', { proxy: 'kp-1', events: [] });
    expect([wrong.status, (wrong.json() as { error: { code: string } }).error.code]).toEqual([401, 'UNAUTHENTICATED']);
    const none = await h.request({ method: 'POST', url: '/v1/audit/key-proxy-events', headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(none.status).toBe(401);
    const bad = await post(KEY_PROXY_TOKEN, { proxy: 'kp 1', events: [{ seq: -1 }] });
    expect([bad.status, (bad.json() as { error: { code: string } }).error.code]).toEqual([400, 'INVALID_INPUT']);
  });
});

describe('malformed and oversized requests', () => {
  const raw = (payload: string, headers: Record<string, string> = {}) =>
    h.request({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${acme.token}`, ...headers }, payload });

  it('answers with stable codes and clear messages', async () => {
    const badJson = await raw('{"query": ');
    expect(badJson.status).toBe(400);
    expect(badJson.body).toMatch(/BAD_REQUEST|Unexpected end|JSON/i);
    const big = await raw(JSON.stringify({ query: `{ viewer { userId } } # ${'x'.repeat(70_000)}` }));
    expect(big.status).toBe(413);
    expect(big.body).toMatch(/PAYLOAD_TOO_LARGE|too large/i);
    const unknownField = await h.gql(acme.token, '{ viewer { password } }');
    expect([unknownField.status, codesOf(unknownField)]).toEqual([400, ['BAD_REQUEST']]);
    const syntax = await h.gql(acme.token, '{ viewer { ');
    expect(codesOf(syntax)).toEqual(['BAD_REQUEST']);
    const complex = await h.gql(acme.token, '{ users(first: 200) { edges { cursor node { id email displayName status createdAt updatedAt externalId } } } }');
    expect(codesOf(complex)).toEqual(['QUERY_TOO_COMPLEX']);
    const invalid = await h.gql(acme.token, 'mutation { createRole(input: { name: "Not A Name", permissions: [] }) { id } }');
    expect(codesOf(invalid)).toEqual(['INVALID_INPUT']);
    expect(invalid.errors![0]!.extensions!.fields).toEqual([{ path: 'name', message: expect.any(String) }]);
  });

  it('limits query depth, fragments included', async () => {
    expect((await h.gql(acme.token, '{ memberships { role { permissions { action } } } }')).errors).toBeUndefined();
    const deep = await h.gql(acme.token, '{ memberships { role { permissions { labels { key } } } } }');
    expect([deep.status, codesOf(deep)]).toEqual([400, ['QUERY_TOO_COMPLEX']]);
    const viaFragment = await h.gql(acme.token, '{ ...F } fragment F on Query { memberships { role { permissions { labels { values } } } } }');
    expect(codesOf(viaFragment)).toEqual(['QUERY_TOO_COMPLEX']);
  });
});

describe('one read transaction per request', () => {
  /** Tenants seen by each pooled connection outside a transaction: none. */
  async function expectNoTenantOnPooledConnections(): Promise<void> {
    const seen = await Promise.all(Array.from({ length: 8 }, () => h.cp.db.sql.query<{ org: string | null }>(`SELECT current_setting('app.org_id', true) AS org`)));
    expect(new Set(seen.map(([row]) => row?.org ?? ''))).toEqual(new Set(['']));
  }

  it('the resolvers of a request share read transactions, in the caller\'s tenant', async () => {
    const query = '{ organization { id } auditEvents(first: 3) { edges { node { seq actor } } } roles { name } users { edges { node { id } } } }';
    expect((await h.gql(acme.token, query)).errors).toBeUndefined(); // authenticates (then cached) and records the token's use
    let before = h.cp.db.transactionsOpened;
    const r = await h.gql<{ organization: { id: string }; auditEvents: { edges: Array<{ node: { actor: string } }> }; roles: unknown[]; users: { edges: Array<{ node: { id: string } }> } }>(acme.token, query);
    expect(r.errors).toBeUndefined();
    // organization + auditEvents: one batch of prepared statements; roles + users: one shared transaction
    expect(h.cp.db.transactionsOpened - before).toBe(2);
    before = h.cp.db.transactionsOpened;
    expect((await h.gql(acme.token, '{ organization { id } auditEvents(first: 3) { edges { node { seq } } } }')).errors).toBeUndefined();
    expect((await h.gql(acme.token, '{ roles { name } users { edges { node { id } } } }')).errors).toBeUndefined();
    expect(h.cp.db.transactionsOpened - before).toBe(2);
    expect(r.data!.organization.id).toBe(acme.orgId);
    expect(r.data!.users.edges.map((e) => e.node.id)).toEqual([acme.userId]);
    expect(r.data!.roles.length).toBeGreaterThanOrEqual(5);
    expect(r.data!.auditEvents.edges.length).toBeGreaterThan(0);
    // requests of two tenants at once: each sees its own
    const [a, g] = await Promise.all([h.gql<{ organization: { id: string } }>(acme.token, query), h.gql<{ organization: { id: string } }>(globex.token, query)]);
    expect([a.data!.organization.id, g.data!.organization.id]).toEqual([acme.orgId, globex.orgId]);
    await expectNoTenantOnPooledConnections();
  });

  it('allowed reads next to refused fields, many at once on a small pool: every refusal audited, no deadlock', async () => {
    const org = await h.bootstrap('shared-reads');
    const roles = await roleIds(org.token);
    const viewerId = await addUser(org.token, 'viewer@shared.test', roles.viewer!);
    const { token } = await h.tokenFor(org.orgId, viewerId);
    const query = '{ organization { id } auditEvents(first: 1) { edges { node { seq } } } apiTokens { id } }';
    // 16 requests in flight on a pool of 4: each holds a read transaction while its refusals
    // need connections of their own to be audited
    const results = await Promise.all(Array.from({ length: 16 }, () => h.gql(token, query)));
    // (root fields are non-null: the first refusal nulls `data` and is the one reported; every
    // field was still resolved — the organization read, both refusals audited)
    for (const r of results) expect(new Set(codesOf(r))).toEqual(new Set(['FORBIDDEN']));
    // once a response is complete, a refusal nulled by a sibling's may still be being audited: wait for all 32
    const denialCount = async () => (await h.gql<{ auditEvents: { edges: unknown[] } }>(org.token, '{ auditEvents(first: 100, filter: { actions: ["authz.denied"] }) { edges { node { seq } } } }')).data!.auditEvents.edges.length;
    for (let i = 0; i < 50 && await denialCount() < 32; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await denialCount()).toBe(32);
    const verified = await h.gql<{ verifyAuditChain: { valid: boolean } }>(org.token, '{ verifyAuditChain { valid } }');
    expect(verified.data!.verifyAuditChain.valid).toBe(true);
    await expectNoTenantOnPooledConnections();
  });

  it('a read failing in the database rolls the request\'s transaction back and leaves no tenant behind', async () => {
    // a well-formed cursor whose position is not a UUID: Postgres refuses the cast mid-transaction
    const cursor = Buffer.from(JSON.stringify(['a', 'not-a-uuid'])).toString('base64url');
    const r = await h.gql(acme.token, 'query($c: String) { organization { id } users(after: $c) { edges { node { id } } } }', { c: cursor });
    expect(codesOf(r).length).toBeGreaterThan(0);
    expect(new Set(codesOf(r))).toEqual(new Set(['INTERNAL']));
    await expectNoTenantOnPooledConnections();
    const next = await h.gql<{ organization: { id: string } }>(globex.token, '{ organization { id } }');
    expect(next.data!.organization.id).toBe(globex.orgId);
  });
});

describe('operations endpoints', () => {
  it('healthz, readyz, metrics and request IDs', async () => {
    expect((await h.request({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await h.request({ method: 'GET', url: '/readyz', headers: { 'x-request-id': 'probe-1' } });
    expect([ready.status, (ready.json() as { status: string }).status, ready.headers['x-request-id']]).toEqual([200, 'ready', 'probe-1']);
    const metrics = await h.request({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain('arca_cp_http_requests_total');
    expect(metrics.body).toContain('arca_cp_audit_events_appended_total');
    const missing = await h.request({ method: 'GET', url: '/nope' });
    expect([missing.status, (missing.json() as { error: { code: string } }).error.code]).toEqual([404, 'NOT_FOUND']);
    expect(h.logs.some((line) => line.includes('"reqId":"probe-1"'))).toBe(true);
  });

  it('readyz is unavailable while migrations are not current', async () => {
    const [row] = await h.scratch.owner<{ checksum: string }[]>`SELECT checksum FROM arca_schema_migrations WHERE version = 1`;
    try {
      await h.scratch.owner`UPDATE arca_schema_migrations SET checksum = 'edited' WHERE version = 1`;
      const mismatch = await h.request({ method: 'GET', url: '/readyz' });
      expect([mismatch.status, (mismatch.json() as { reason: string }).reason]).toEqual([503, 'applied migrations differ from this build']);
      await h.scratch.owner`DELETE FROM arca_schema_migrations WHERE version = 1`;
      const pending = await h.request({ method: 'GET', url: '/readyz' });
      expect([pending.status, (pending.json() as { reason: string }).reason]).toEqual([503, 'migrations pending: run the migrate command']);
    } finally {
      await h.scratch.owner`INSERT INTO arca_schema_migrations (version, name, checksum) VALUES (1, '0001_tenancy_identity_audit.sql', ${row!.checksum}) ON CONFLICT (version) DO UPDATE SET checksum = EXCLUDED.checksum`;
    }
    expect((await h.request({ method: 'GET', url: '/readyz' })).status).toBe(200);
  });
});
