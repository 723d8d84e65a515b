import { describe, expect, it } from 'vitest';
import {
  AGENT_API_PATHS, JOB_KINDS, JOB_KIND_TOKEN_OPS, enrollRequestSchema, jobCompleteRequestSchema, leaseRequestSchema,
  leasedJobSchema, parseJobSpec, postgresDumpPath, snapshotMetaSchema,
} from '../src/index.ts';

const hex = (c: string) => c.repeat(64);
const uuid = '0f0e0d0c-0b0a-4908-8706-050403020100';

describe('agent API schemas (docs/fleet.md §3)', () => {
  it('enrollment needs an enrollment token and an Ed25519 public JWK', () => {
    const ok = { token: 'arca_enr_abc', publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) }, hostname: 'h', os: 'linux', arch: 'x64', version: '1' };
    expect(enrollRequestSchema.safeParse(ok).success).toBe(true);
    expect(enrollRequestSchema.safeParse({ ...ok, token: 'arca_agt_abc' }).success).toBe(false);
    expect(enrollRequestSchema.safeParse({ ...ok, publicJwk: { ...ok.publicJwk, crv: 'P-256' } }).success).toBe(false);
    expect(enrollRequestSchema.safeParse({ ...ok, publicJwk: { ...ok.publicJwk, d: 'secret' } }).data?.publicJwk).not.toHaveProperty('d');
  });

  it('lease waits at most 30 s for at least one slot', () => {
    expect(leaseRequestSchema.safeParse({ slots: 2, waitSeconds: 30 }).success).toBe(true);
    expect(leaseRequestSchema.safeParse({ slots: 2, waitSeconds: 31 }).success).toBe(false);
    expect(leaseRequestSchema.safeParse({ slots: 0, waitSeconds: 1 }).success).toBe(false);
  });

  it('every job kind has a spec schema and token operations', () => {
    for (const kind of JOB_KINDS) expect(JOB_KIND_TOKEN_OPS[kind].store.length).toBeGreaterThan(0);
    expect(parseJobSpec('backup', { resourceId: uuid, paths: ['/srv'], excludes: [], tags: [] })).toMatchObject({ paths: ['/srv'] });
    expect(() => parseJobSpec('backup', { resourceId: uuid, paths: [], excludes: [], tags: [] })).toThrow();
    expect(parseJobSpec('restore-test', { snapshotId: 'latest', resourceId: uuid }).snapshotId).toBe('latest');
    expect(JOB_KIND_TOKEN_OPS.replicate.copyStore).toEqual(['backup']);
  });

  it('a backup spec names paths or one postgres database, never both, and never a password', () => {
    const pg = { resourceId: uuid, postgres: { database: 'shop', host: 'db1.internal', port: 5433, user: 'backup' }, tags: ['nightly'] };
    expect(parseJobSpec('backup', pg)).toEqual(pg);
    expect(parseJobSpec('backup', { resourceId: uuid, postgres: { database: 'shop' }, tags: [] })).toEqual({ resourceId: uuid, postgres: { database: 'shop' }, tags: [] });
    for (const host of ['127.0.0.1', '::1', '[::1]', '/var/run/postgresql', 'db-1.example.com']) {
      expect(() => parseJobSpec('backup', { ...pg, postgres: { database: 'shop', host } }), host).not.toThrow();
    }
    const refused: unknown[] = [
      { ...pg, postgres: { ...pg.postgres, password: 'secret' } }, // credentials stay on the agent's machine
      { ...pg, postgres: { database: 'host=evil.example.com' } }, // libpq would read it as a connection string
      { ...pg, postgres: { database: 'postgresql://u:p@h/db' } },
      { ...pg, postgres: { database: 'x'.repeat(64) } },
      { ...pg, postgres: { database: 'shop', host: '-oProxyCommand=x' } },
      { ...pg, postgres: { database: 'shop', host: 'a b' } },
      { ...pg, postgres: { database: 'shop', port: 0 } },
      { ...pg, postgres: { database: 'shop', user: 'a=b' } },
      { ...pg, paths: ['/srv'], excludes: [] }, // both kinds at once
      { resourceId: uuid, database: 'shop', tags: [] }, // the old, unfinished shape
      { resourceId: uuid, postgres: {}, tags: [] },
    ];
    for (const spec of refused) expect(() => parseJobSpec('backup', spec), JSON.stringify(spec)).toThrow();
    expect(postgresDumpPath('shop')).toBe('/postgres/shop.dump');
  });

  it('a leased job carries store access with nullable credentials', () => {
    const job = {
      id: uuid, kind: 'backup', attempt: 1, leaseExpiresAt: '2026-12-04T12:00:00.000Z', leaseSeconds: 60, spec: {},
      store: { id: uuid, storeId: hex('a'), url: 'fs:///srv/store', keyProxyUrl: 'https://kp', credentials: null }, token: 'jwt',
    };
    expect(leasedJobSchema.safeParse(job).success).toBe(true);
    expect(leasedJobSchema.safeParse({ ...job, kind: 'format' }).success).toBe(false);
  });

  it('completion snapshots are sizes and counts only', () => {
    const meta = {
      storeId: hex('a'), snapshotId: hex('b'), time: '2026-12-04T12:00:00Z', hostname: 'h', tags: [], totalBytes: 1, fileCount: 1,
      dirCount: 1, newBytes: 1, storedBytes: 1, durationMs: 5, paths: ['/secret/file'],
    };
    expect(snapshotMetaSchema.parse(meta)).not.toHaveProperty('paths');
    expect(jobCompleteRequestSchema.safeParse({ attempt: 1, outcome: 'succeeded', snapshots: [meta] }).success).toBe(true);
    expect(jobCompleteRequestSchema.safeParse({ attempt: 1, outcome: 'done' }).success).toBe(false);
  });

  it('job paths are built under /agent/v1', () => {
    expect(AGENT_API_PATHS.jobComplete(uuid)).toBe(`/agent/v1/jobs/${uuid}/complete`);
  });
});
