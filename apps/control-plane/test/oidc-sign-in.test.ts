import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrganizationService, type BootstrapResult } from '../src/organizations/organization.service.ts';
import { startOidcProvider, type OidcProviderFixture } from './support/oidc-provider-fixture.ts';
import { codesOf, startHarness, type Harness } from './support/control-plane-harness.ts';

// Medium tier: sign-in end to end against a real OpenID provider (oidc-provider on loopback),
// the control plane on a fresh Postgres database. The test plays the browser: it carries the
// cookies and follows the redirects between the control plane (in-process `inject`) and the
// provider (real HTTP).
const PUBLIC = 'https://cp.arca.test';
const REDIRECT = `${PUBLIC}/auth/callback`;

let h: Harness;
let idp: OidcProviderFixture;
let secretDir: string;
let acme: BootstrapResult;
let globex: BootstrapResult;

beforeAll(async () => {
  idp = await startOidcProvider({ redirectUri: REDIRECT });
  secretDir = await mkdtemp(join(tmpdir(), 'arca-oidc-'));
  await writeFile(join(secretDir, 'client-secret'), `${idp.clientSecret}\n`, { mode: 0o600 });
  h = await startHarness({
    ARCA_CP_OIDC_ISSUER: idp.issuer,
    ARCA_CP_OIDC_CLIENT_ID: idp.clientId,
    ARCA_CP_OIDC_CLIENT_SECRET_FILE: join(secretDir, 'client-secret'),
    ARCA_CP_OIDC_REDIRECT_URL: REDIRECT,
  });
  acme = await h.bootstrap('acme');
  globex = await h.bootstrap('globex');
  idp.accounts.set('ada', { email: 'ada@acme.test', email_verified: true, name: 'Ada' });
  idp.accounts.set('bob', { email: 'bob@acme.test', email_verified: false });
  idp.accounts.set('owner-acme', { email: 'owner@acme.test', email_verified: true });
});
afterAll(async () => {
  await h?.close();
  await idp?.close();
  await rm(secretDir, { recursive: true, force: true });
});

function setCookies(headers: Record<string, unknown>): string[] {
  const value = headers['set-cookie'];
  return value == null ? [] : Array.isArray(value) ? (value as string[]) : [String(value)];
}

/** name → value of the cookies a response sets (empty value: deleted) */
function cookieJar(headers: Record<string, unknown>): Map<string, string> {
  return new Map(setCookies(headers).map((c) => {
    const pair = c.split(';')[0]!;
    return [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)] as const;
  }));
}

interface Attempt {
  loginCookie: string;
  callbackPath: string;
}

/** /auth/login → the provider (log in + consent as `account`) → the callback URL, not yet followed. */
async function startSignIn(query: string, account: string): Promise<Attempt> {
  const login = await h.request({ method: 'GET', url: `/auth/login?${query}` });
  expect(login.status, login.body).toBe(302);
  const loginCookie = setCookies(login.headers)[0]!;
  expect(loginCookie).toMatch(/^__Host-arca_login=.+; Path=\/; SameSite=Lax; Max-Age=600; HttpOnly; Secure$/);
  const callback = new URL(await idp.authorize(String(login.headers.location), account));
  return { loginCookie: loginCookie.split(';')[0]!, callbackPath: `/auth/callback${callback.search}` };
}

async function finishSignIn(attempt: Attempt, callbackPath = attempt.callbackPath) {
  return h.request({ method: 'GET', url: callbackPath, headers: { cookie: attempt.loginCookie } });
}

interface Session {
  cookie: string;
  csrf: string;
}

async function signIn(query: string, account: string): Promise<Session> {
  const response = await finishSignIn(await startSignIn(query, account));
  expect(response.status, response.body).toBe(302);
  const jar = cookieJar(response.headers);
  return { cookie: `__Host-arca_session=${jar.get('__Host-arca_session')}`, csrf: jar.get('__Host-arca_csrf')! };
}

const asSession = (s: Session, extra: Record<string, string> = {}) => ({ cookie: s.cookie, 'x-arca-csrf': s.csrf, origin: PUBLIC, ...extra });

async function auditActions(token: string, filter: string[]): Promise<Array<{ action: string; payload: Record<string, unknown> }>> {
  const r = await h.gql<{ auditEvents: { edges: Array<{ node: { action: string; payload: Record<string, unknown> } }> } }>(token,
    'query($a: [String!]) { auditEvents(first: 200, filter: { actions: $a }) { edges { node { action payload } } } }', { a: filter });
  return r.data!.auditEvents.edges.map((e) => e.node);
}

async function roleId(token: string, name: string): Promise<string> {
  const r = await h.gql<{ roles: Array<{ id: string; name: string }> }>(token, '{ roles { id name } }');
  return r.data!.roles.find((role) => role.name === name)!.id;
}

async function invite(email: string, role: string): Promise<{ code: string; url: string }> {
  const r = await h.gql<{ createInvitation: { code: string; url: string } }>(acme.token,
    'mutation($i: CreateInvitationInput!) { createInvitation(input: $i) { code url invitation { status } } }', { i: { email, roleId: await roleId(acme.token, role) } });
  expect(r.errors).toBeUndefined();
  return r.data!.createInvitation;
}

describe('OIDC sign-in (authorization code + PKCE) and sessions', () => {
  it('an invitation accepted at sign-in gives its role in its organization only; cookies are safe; CSRF is enforced', async () => {
    const { code, url } = await invite('ada@acme.test', 'operator');
    expect(url).toBe(`${PUBLIC}/auth/login?invitation=${code}`);
    const attempt = await startSignIn(`invitation=${code}&returnTo=/jobs`, 'ada');
    const response = await finishSignIn(attempt);
    expect([response.status, response.headers.location]).toEqual([302, '/jobs']);
    const cookies = setCookies(response.headers);
    expect(cookies.find((c) => c.startsWith('__Host-arca_session='))).toMatch(/; Path=\/; SameSite=Lax; Max-Age=43200; HttpOnly; Secure$/);
    expect(cookies.find((c) => c.startsWith('__Host-arca_csrf='))).toMatch(/; Path=\/; SameSite=Lax; Max-Age=43200; Secure$/);
    expect(cookies.find((c) => c.startsWith('__Host-arca_login='))).toMatch(/^__Host-arca_login=; .*Max-Age=0/);
    const jar = cookieJar(response.headers);
    const session = { cookie: `__Host-arca_session=${jar.get('__Host-arca_session')}`, csrf: jar.get('__Host-arca_csrf')! };

    const viewer = await h.gql<{ viewer: { roleName: string; organizationId: string; sessionId: string; tokenId: string | null } }>(null,
      '{ viewer { roleName organizationId sessionId tokenId } }', undefined, asSession(session));
    expect(viewer.errors).toBeUndefined();
    expect(viewer.data!.viewer).toMatchObject({ roleName: 'operator', organizationId: acme.orgId, tokenId: null });
    const mutation = 'mutation { createApiToken(input: { name: "from-dashboard", scopes: ["read:User"] }) { apiToken { id } } }';
    expect(codesOf(await h.gql(null, mutation, undefined, { cookie: session.cookie, origin: PUBLIC }))).toEqual(['CSRF_REJECTED']);
    expect(codesOf(await h.gql(null, mutation, undefined, asSession(session, { origin: 'https://evil.example' })))).toEqual(['CSRF_REJECTED']);
    expect(codesOf(await h.gql(null, mutation, undefined, asSession(session, { 'x-arca-csrf': 'A'.repeat(43) })))).toEqual(['CSRF_REJECTED']);
    expect(codesOf(await h.gql(null, '{ viewer { userId } }', undefined, { cookie: session.cookie }))).toEqual(['CSRF_REJECTED']);
    expect((await h.gql(null, mutation, undefined, asSession(session))).errors).toBeUndefined();
    // an operator cannot invite: the invited role's own limits apply
    expect(codesOf(await h.gql(null, 'mutation($r: ID!) { createInvitation(input: { email: "x@acme.test", roleId: $r }) { code } }', { r: await roleId(acme.token, 'viewer') }, asSession(session)))).toEqual(['FORBIDDEN']);

    // the invitation is used up; the same person is no member of another organization
    const again = await finishSignIn(await startSignIn(`invitation=${code}`, 'ada'));
    expect(again.status).toBe(302); // already a member (by issuer and subject): a plain sign-in
    const other = await finishSignIn(await startSignIn(`org=${globex.orgId}`, 'ada'));
    expect([other.status, (other.json() as { error: { code: string; message: string } }).error.message]).toEqual([401, expect.stringContaining('not a member')]);
    const globexUsers = await h.gql<{ users: { edges: unknown[] } }>(globex.token, '{ users { edges { cursor } } }');
    expect(globexUsers.data!.users.edges).toHaveLength(1);
    const invitations = await h.gql<{ invitations: Array<{ status: string; email: string }> }>(acme.token, '{ invitations { email status } }');
    expect(invitations.data!.invitations).toContainEqual({ email: 'ada@acme.test', status: 'ACCEPTED' });
    expect((await auditActions(acme.token, ['invitation.created', 'invitation.accepted', 'auth.signed_in'])).map((e) => e.action).sort())
      .toEqual(['auth.signed_in', 'auth.signed_in', 'invitation.accepted', 'invitation.created']);
  });

  it('refuses a wrong state, a replayed code, a tampered ID token, an unverified email and a missing attempt', async () => {
    const attempt = await startSignIn(`org=${acme.orgId}`, 'ada');
    const wrongState = attempt.callbackPath.replace(/state=[^&]+/, 'state=forged-state-value-0123456789');
    expect((await finishSignIn(attempt, wrongState)).status).toBe(401);

    const good = await startSignIn(`org=${acme.orgId}`, 'ada');
    expect((await finishSignIn(good)).status).toBe(302);
    const replay = await finishSignIn(good);
    expect(replay.status).toBe(401);

    idp.tamperIdToken = true;
    try {
      expect((await finishSignIn(await startSignIn(`org=${acme.orgId}`, 'ada'))).status).toBe(401);
    } finally {
      idp.tamperIdToken = false;
    }

    const { code } = await invite('bob@acme.test', 'viewer');
    const unverified = await finishSignIn(await startSignIn(`invitation=${code}`, 'bob'));
    expect([unverified.status, (unverified.json() as { error: { message: string } }).error.message]).toEqual([401, expect.stringContaining('not report your email address as verified')]);
    const stillPending = await h.gql<{ invitations: Array<{ status: string; email: string }> }>(acme.token, '{ invitations { email status } }');
    expect(stillPending.data!.invitations).toContainEqual({ email: 'bob@acme.test', status: 'PENDING' });

    const noAttempt = await h.request({ method: 'GET', url: good.callbackPath });
    expect(noAttempt.status).toBe(401);
    const reasons = (await auditActions(acme.token, ['auth.failed'])).map((e) => e.payload.reason);
    expect(reasons).toEqual(expect.arrayContaining(['state-mismatch', 'code-rejected', 'id-token-invalid', 'email-not-verified']));
  });

  it('sessions end at logout, expiry, idle timeout and suspension', async () => {
    const viewer = (s: Session) => h.gql(null, '{ viewer { userId } }', undefined, asSession(s));
    const logoutOf = (s: Session, headers: Record<string, string>) => h.request({ method: 'POST', url: '/auth/logout', headers: { cookie: s.cookie, ...headers } });

    const first = await signIn(`org=${acme.orgId}`, 'ada');
    expect((await logoutOf(first, { origin: PUBLIC })).status).toBe(403);
    const out = await logoutOf(first, { origin: PUBLIC, 'x-arca-csrf': first.csrf });
    expect([out.status, out.json()]).toEqual([200, { signedOut: true }]);
    expect(cookieJar(out.headers).get('__Host-arca_session')).toBe('');
    expect(codesOf(await viewer(first))).toEqual(['UNAUTHENTICATED']);

    // expiry and idleness are set behind the server's back, before the session's first use: a
    // principal it has already cached would be reused for ARCA_CP_AUTH_CACHE_MS (the documented bound)
    const expired = await signIn(`org=${acme.orgId}`, 'ada');
    await h.scratch.owner`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE revoked_at IS NULL`;
    expect(codesOf(await viewer(expired))).toEqual(['UNAUTHENTICATED']);

    const idle = await signIn(`org=${acme.orgId}`, 'ada');
    await h.scratch.owner`UPDATE sessions SET last_seen_at = now() - interval '61 minutes' WHERE revoked_at IS NULL AND expires_at > now()`;
    expect(codesOf(await viewer(idle))).toEqual(['UNAUTHENTICATED']);

    const suspended = await signIn(`org=${acme.orgId}`, 'ada');
    const adaId = ((await viewer(suspended)).data as { viewer: { userId: string } }).viewer.userId;
    const suspend = await h.gql(acme.token, 'mutation($id: ID!) { updateUser(input: { id: $id, status: SUSPENDED }) { status } }', { id: adaId });
    expect(suspend.errors).toBeUndefined();
    expect(codesOf(await viewer(suspended))).toEqual(['UNAUTHENTICATED']);
    const [row] = await h.scratch.owner<{ n: number }[]>`SELECT count(*)::int AS n FROM sessions WHERE user_id = ${adaId} AND revoked_reason = 'user-suspended'`;
    expect(row!.n).toBeGreaterThanOrEqual(1); // and the older, expired ones
    const refused = await finishSignIn(await startSignIn(`org=${acme.orgId}`, 'ada'));
    expect((refused.json() as { error: { message: string } }).error.message).toContain('suspended');
    await h.gql(acme.token, 'mutation($id: ID!) { updateUser(input: { id: $id, status: ACTIVE }) { status } }', { id: adaId });
    expect((await auditActions(acme.token, ['auth.signed_out', 'session.revoked'])).map((e) => e.action).sort()).toEqual(['auth.signed_out', 'session.revoked']);
  });

  it('a session user sees only their organization; a session cookie cannot be moved to another', async () => {
    const session = await signIn(`org=${acme.orgId}`, 'ada');
    const r = await h.gql<{ organization: { id: string } }>(null, '{ organization { id } }', undefined, asSession(session));
    expect(r.data!.organization.id).toBe(acme.orgId);
    expect(codesOf(await h.gql(null, 'query($id: ID!) { user(id: $id) { id } }', { id: globex.userId }, asSession(session)))).toEqual(['NOT_FOUND']);
    // same session ID and secret, but naming globex: there is no such session in globex
    const value = session.cookie.slice(session.cookie.indexOf('=') + 1 + 'arca_ses_'.length);
    const bytes = Buffer.from(value, 'base64url');
    Buffer.from(globex.orgId.replace(/-/g, ''), 'hex').copy(bytes, 0);
    const moved = { ...session, cookie: `__Host-arca_session=arca_ses_${bytes.toString('base64url')}` };
    expect(codesOf(await h.gql(null, '{ organization { id } }', undefined, asSession(moved)))).toEqual(['UNAUTHENTICATED']);
  });

  it('first-user bootstrap: the one-time owner link needs the link and the verified email; provisioned users link by verified email', async () => {
    const organizations = h.cp.app.get(OrganizationService);
    const link = await organizations.bootstrapLink({ organization: 'initech', email: 'root@initech.test' });
    idp.accounts.set('root', { email: 'root@initech.test', email_verified: true });
    idp.accounts.set('mallory', { email: 'mallory@initech.test', email_verified: true });
    const query = new URL(link.url!).search.slice(1);
    const wrongPerson = await finishSignIn(await startSignIn(query, 'mallory'));
    expect((wrongPerson.json() as { error: { message: string } }).error.message).toContain('another email address');
    const owner = await signIn(query, 'root');
    const me = await h.gql<{ viewer: { roleName: string; organizationId: string } }>(null, '{ viewer { roleName organizationId } }', undefined, asSession(owner));
    expect(me.data!.viewer).toEqual({ roleName: 'owner', organizationId: link.orgId });
    await expect(organizations.bootstrapLink({ orgId: link.orgId, email: 'root@initech.test' })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await finishSignIn(await startSignIn(query, 'root'))).status).toBe(302); // used link: a plain sign-in of the owner

    // acme's owner was created by the API-token bootstrap: bound to the provider at first sign-in
    const linked = await signIn(`org=${acme.orgId}`, 'owner-acme');
    const viewer = await h.gql<{ viewer: { userId: string } }>(null, '{ viewer { userId } }', undefined, asSession(linked));
    expect(viewer.data!.viewer.userId).toBe(acme.userId);
    const unverified = await finishSignIn(await startSignIn(`org=${globex.orgId}`, 'bob'));
    expect(unverified.status).toBe(401);
  });
});
