import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subject } from '@casl/ability';
import { describe, expect, it } from 'vitest';
import { buildAbility } from '../../src/access/ability-factory.ts';
import { BUILTIN_ROLE_RULES, isScope, type PermissionRule } from '../../src/access/permissions.ts';
import { newApiToken, parseApiToken, secretMatches } from '../../src/auth/api-token-format.ts';
import { auditEntryHash, canonicalJson, GENESIS_HASH } from '../../src/audit/audit-hash.ts';
import { loadControlPlaneConfig } from '../../src/config/control-plane-config.ts';
import { ControlPlaneErrorCode } from '../../src/errors/control-plane-error.ts';
import { isSafeReturnPath } from '../../src/identity/login-cookie.ts';
import { cookieNames, csrfMatches, csrfTokenFor, readCookie } from '../../src/sessions/session-cookies.ts';

const USER = '11111111-1111-4111-8111-111111111111';

describe('RBAC abilities', () => {
  it('label conditions admit only resources whose labels match', () => {
    const rules: PermissionRule[] = [{ action: 'manage', subject: 'Store', labels: { environment: ['prod'], perimeter: ['eu', 'ch'] } }];
    const ability = buildAbility({ userId: USER, rules });
    expect(ability.can('update', subject('Store', { labels: { environment: 'prod', perimeter: 'eu' } }) as never)).toBe(true);
    expect(ability.can('update', subject('Store', { labels: { environment: 'prod', perimeter: 'us' } }) as never)).toBe(false);
    expect(ability.can('update', subject('Store', { labels: { environment: 'dev', perimeter: 'eu' } }) as never)).toBe(false);
    expect(ability.can('update', subject('Store', { labels: {} }) as never)).toBe(false);
    expect(ability.can('read', 'Agent')).toBe(false);
  });

  it('own-object rules match on userId', () => {
    const ability = buildAbility({ userId: USER, rules: BUILTIN_ROLE_RULES.operator });
    expect(ability.can('delete', subject('ApiToken', { userId: USER }) as never)).toBe(true);
    expect(ability.can('delete', subject('ApiToken', { userId: 'someone-else' }) as never)).toBe(false);
  });

  it('token scopes narrow the role and never widen it', () => {
    const owner = buildAbility({ userId: USER, rules: BUILTIN_ROLE_RULES.owner, scopes: ['read:AuditEvent', 'verify:AuditEvent'] });
    expect(owner.can('read', 'AuditEvent')).toBe(true);
    expect(owner.can('verify', 'AuditEvent')).toBe(true);
    expect(owner.can('read', 'User')).toBe(false);
    expect(owner.can('update', 'Organization')).toBe(false);
    const viewer = buildAbility({ userId: USER, rules: BUILTIN_ROLE_RULES.viewer, scopes: ['update:Organization', 'read:User'] });
    expect(viewer.can('update', 'Organization')).toBe(false);
    expect(viewer.can('read', 'User')).toBe(true);
    const admin = buildAbility({ userId: USER, rules: BUILTIN_ROLE_RULES.admin, scopes: ['*'] });
    expect(admin.can('update', 'Organization')).toBe(false); // inverted rules survive
    expect(admin.can('delete', 'User')).toBe(true);
  });

  it('scopes are "*" or action:Subject from the vocabulary', () => {
    expect(['*', 'read:AuditEvent', 'manage:all'].every(isScope)).toBe(true);
    expect(['read', 'read:Nope', 'fly:User', 'read:User:x', ''].some(isScope)).toBe(false);
  });
});

describe('API token format', () => {
  it('round-trips organization and token IDs; only the secret hash is kept', () => {
    const org = '4b33927e-4664-43f8-9874-93007fdadcab';
    const id = '035c1a96-95ac-4f89-930d-89d720e953d6';
    const { token, secretHash } = newApiToken(org, id);
    expect(token).toMatch(/^arca_pat_[A-Za-z0-9_-]{86}$/);
    const parsed = parseApiToken(token)!;
    expect(parsed).toMatchObject({ orgId: org, tokenId: id });
    expect(secretMatches(parsed.secret, secretHash)).toBe(true);
    const other = parseApiToken(newApiToken(org, id).token)!;
    expect(secretMatches(other.secret, secretHash)).toBe(false);
  });

  it('rejects anything malformed without throwing', () => {
    for (const bad of ['', 'arca_pat_', 'arca_pat_' + 'A'.repeat(85), 'arca_pat_' + '*'.repeat(86), 'Bearer x', 'arca_xyz_' + 'A'.repeat(86)]) {
      expect(parseApiToken(bad)).toBeNull();
    }
  });
});

describe('audit hashing', () => {
  it('canonical JSON does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}');
    const entry = { orgId: USER, seq: 1, time: new Date(0), actor: 'system', action: 'x', target: '', payload: { b: 1, a: 2 }, requestId: null, source: null };
    expect(auditEntryHash(GENESIS_HASH, entry)).toBe(auditEntryHash(GENESIS_HASH, { ...entry, payload: { a: 2, b: 1 } }));
    expect(auditEntryHash(GENESIS_HASH, entry)).not.toBe(auditEntryHash(GENESIS_HASH, { ...entry, seq: 2 }));
  });
});

describe('configuration', () => {
  it('has safe defaults, embedded database, and no secret defaults', () => {
    const config = loadControlPlaneConfig({}, '/srv');
    expect(config).toMatchObject({ host: '127.0.0.1', port: 8080, database: { kind: 'pglite', dataDir: '/srv/.arca-data/control-plane' }, keyProxyAuditTokenSha256: [] });
  });

  it('lists every bad variable at once', () => {
    try {
      loadControlPlaneConfig({ ARCA_CP_PORT: 'eighty', DATABASE_URL: 'mysql://x', ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256: 'not-a-digest', ARCA_CP_LOG_LEVEL: 'loud' });
      expect.unreachable();
    } catch (err) {
      const e = err as { code: string; fields: Array<{ path: string }>; message: string };
      expect(e.code).toBe(ControlPlaneErrorCode.ConfigInvalid);
      expect(e.fields.map((f) => f.path).sort()).toEqual(['ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256', 'ARCA_CP_LOG_LEVEL', 'ARCA_CP_PORT', 'DATABASE_URL']);
      expect(e.message).toContain('DATABASE_URL');
    }
  });

  it('a migration URL needs a runtime URL', () => {
    expect(() => loadControlPlaneConfig({ DATABASE_MIGRATION_URL: 'postgres://owner@db/arca' })).toThrow(/only used together with DATABASE_URL/);
  });

  it('OIDC: all four variables or none, the secret from its file, https unless loopback, Secure cookies unless localhost', () => {
    const dir = mkdtempSync(join(tmpdir(), 'arca-cfg-'));
    try {
      writeFileSync(join(dir, 'secret'), 's3cret-from-file\n');
      const oidc = { ARCA_CP_OIDC_ISSUER: 'https://idp.example', ARCA_CP_OIDC_CLIENT_ID: 'arca', ARCA_CP_OIDC_CLIENT_SECRET_FILE: 'secret', ARCA_CP_OIDC_REDIRECT_URL: 'https://cp.example/auth/callback' };
      expect(loadControlPlaneConfig(oidc, dir)).toMatchObject({
        oidc: { clientSecret: 's3cret-from-file', publicOrigin: 'https://cp.example', allowHttpIssuer: false, scopes: 'openid email profile' },
        sessions: { ttlMs: 12 * 3_600_000, idleMs: 3_600_000, cookieSecure: true },
      });
      expect(loadControlPlaneConfig({}, dir).oidc).toBeNull();
      const problems = (env: Record<string, string>): string[] => {
        try {
          loadControlPlaneConfig(env, dir);
          return [];
        } catch (err) {
          return (err as { fields: Array<{ path: string }> }).fields.map((f) => f.path).sort();
        }
      };
      expect(problems({ ARCA_CP_OIDC_ISSUER: 'https://idp.example' })).toEqual(['ARCA_CP_OIDC_CLIENT_ID', 'ARCA_CP_OIDC_CLIENT_SECRET_FILE', 'ARCA_CP_OIDC_REDIRECT_URL']);
      expect(problems({ ...oidc, ARCA_CP_OIDC_CLIENT_SECRET_FILE: 'missing' })).toEqual(['ARCA_CP_OIDC_CLIENT_SECRET_FILE']);
      expect(problems({ ...oidc, ARCA_CP_OIDC_ISSUER: 'http://idp.example', ARCA_CP_OIDC_REDIRECT_URL: 'http://cp.example/auth/callback' })).toEqual(['ARCA_CP_OIDC_ISSUER', 'ARCA_CP_OIDC_REDIRECT_URL']);
      expect(problems({ ...oidc, ARCA_CP_COOKIE_SECURE: 'false' })).toEqual(['ARCA_CP_COOKIE_SECURE']);
      expect(problems({ ...oidc, ARCA_CP_OIDC_ISSUER: 'http://127.0.0.1:9000', ARCA_CP_OIDC_REDIRECT_URL: 'http://localhost:8080/auth/callback', ARCA_CP_COOKIE_SECURE: 'false' })).toEqual([]);
      expect(problems({ ...oidc, ARCA_CP_OIDC_SCOPES: 'email profile' })).toEqual(['ARCA_CP_OIDC_SCOPES']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sign-in helpers', () => {
  it('return paths stay on this origin; the CSRF token is bound to the session secret', () => {
    for (const ok of ['/', '/jobs', '/jobs?id=1#x']) expect(isSafeReturnPath(ok), ok).toBe(true);
    for (const bad of ['//evil.example', '/\\evil.example', 'https://evil.example', 'jobs', '/a b']) expect(isSafeReturnPath(bad), bad).toBe(false);
    const secret = Buffer.alloc(32, 7);
    expect(csrfMatches(secret, csrfTokenFor(secret))).toBe(true);
    expect(csrfMatches(Buffer.alloc(32, 8), csrfTokenFor(secret))).toBe(false);
    expect(csrfMatches(secret, undefined)).toBe(false);
    expect(readCookie('a=1; __Host-arca_session=arca_ses_x; b=2', '__Host-arca_session')).toBe('arca_ses_x');
    expect(cookieNames(false).session).toBe('arca_session');
  });
});
