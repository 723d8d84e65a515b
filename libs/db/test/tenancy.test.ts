import { randomUUID } from 'node:crypto';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import {
  Database, DbErrorCode, auditChainHeads, auditEvents, apiTokens, memberships, migrationStatus, organizations,
  postgresSqlClient, resultRows, roles, users, sessions, invitations,
  enrollmentTokens, agents, stores, resources, policies, jobs, jobEvents, snapshots,
} from '../src/index.ts';

/** The database's own message (Drizzle wraps driver errors in a "Failed query" error). */
async function causeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return String((err as { cause?: Error }).cause?.message ?? (err as Error).message);
  }
  throw new Error('expected the query to fail');
}

// Medium tier: the real Postgres on 127.0.0.1:5432, a fresh database for this file, dropped after.
describe('tenancy on Postgres (row-level security as the app role)', () => {
  let scratch: ScratchDatabase;
  let db: Database;
  const orgA = randomUUID();
  const orgB = randomUUID();

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    db = await Database.open({ kind: 'postgres', url: scratch.appUrl, poolSize: 4 });
    for (const [org, name] of [[orgA, 'Acme'], [orgB, 'Globex']] as const) {
      await db.withTenant(org, async (tx) => {
        await tx.insert(organizations).values({ id: org, name });
        await tx.insert(users).values([
          { orgId: org, id: randomUUID(), email: `alice@${name}.test`, displayName: 'Alice' },
          { orgId: org, id: randomUUID(), email: `bob@${name}.test`, displayName: 'Bob' },
        ]);
      });
    }
  });
  afterAll(async () => {
    await db?.close();
    await scratch?.drop();
  });

  it('an unscoped raw query returns only the current tenant\'s rows', async () => {
    const rows = await db.withTenant(orgA, async (tx) => resultRows<{ org_id: string }>(await tx.execute(sql.raw('SELECT org_id FROM users'))));
    expect(rows).toHaveLength(2);
    expect(new Set(rows.map((r) => r.org_id))).toEqual(new Set([orgA]));
    const orgs = await db.withTenant(orgB, async (tx) => tx.select().from(organizations));
    expect(orgs.map((o) => o.id)).toEqual([orgB]);
  });

  it('no tenant set: nothing is visible, even on a connection that served a tenant before', async () => {
    await db.withTenant(orgA, async (tx) => tx.select().from(users));
    for (let i = 0; i < 4; i++) expect(await db.sql.query('SELECT * FROM users')).toEqual([]);
  });

  it('rows of another tenant can be neither written nor moved there', async () => {
    expect(await causeOf(db.withTenant(orgA, async (tx) => {
      await tx.insert(users).values({ orgId: orgB, id: randomUUID(), email: 'mallory@x.test', displayName: 'M' });
    }))).toMatch(/row-level security/);
    expect(await causeOf(db.withTenant(orgA, (tx) => tx.execute(sql`UPDATE users SET org_id = ${orgB}`)))).toMatch(/row-level security/);
  });

  it('the audit log is append-only for the app role', async () => {
    await db.withTenant(orgA, async (tx) => {
      await tx.insert(auditEvents).values({ orgId: orgA, seq: 1, time: new Date(), actor: 'system', action: 'test', target: '', payload: {}, prevHash: '0'.repeat(64), hash: '1'.repeat(64) });
    });
    expect(await causeOf(db.withTenant(orgA, (tx) => tx.execute(sql`UPDATE audit_events SET action = 'x'`)))).toMatch(/permission denied/);
    expect(await causeOf(db.withTenant(orgA, (tx) => tx.execute(sql`DELETE FROM audit_events`)))).toMatch(/permission denied/);
  });

  it('the runtime role check accepts the app role and refuses a superuser', async () => {
    await db.assertRuntimeRoleEnforcesRls();
    const superDb = await Database.open({ kind: 'postgres', url: scratch.ownerUrl, poolSize: 1 });
    try {
      await expect(superDb.assertRuntimeRoleEnforcesRls()).rejects.toMatchObject({ code: DbErrorCode.InsecureRole });
    } finally {
      await superDb.close();
    }
  });

  it('the housekeeping functions reveal only IDs and times across tenants; the tables stay tenant-scoped', async () => {
    const queued: Record<string, string> = {};
    for (const org of [orgA, orgB]) {
      await db.withTenant(org, async (tx) => {
        const agentId = randomUUID();
        const storeRow = randomUUID();
        await tx.insert(agents).values({ orgId: org, id: agentId, name: 'host', publicKeyX: 'x'.repeat(43), keyThumbprint: 't'.repeat(43) });
        await tx.insert(stores).values({ orgId: org, id: storeRow, name: 'primary', storeId: 'a'.repeat(64), kind: 'fs', url: '/srv/store', keyProxyUrl: 'https://kp.test' });
        await tx.insert(policies).values({ orgId: org, id: randomUUID(), name: 'nightly', schedule: '0 2 * * *', timezone: 'UTC', rpoMinutes: 1440, storeId: storeRow, nextRunAt: new Date(Date.now() - 60_000) });
        queued[org] = randomUUID();
        await tx.insert(jobs).values({ orgId: org, id: queued[org]!, kind: 'backup', status: 'leased', agentId, storeId: storeRow, requestedBy: 'system', leaseExpiresAt: new Date(Date.now() - 1000) });
      });
    }
    const expired = await db.expiredLeases(100);
    expect(expired.map((r) => [r.orgId, r.jobId]).sort()).toEqual([[orgA, queued[orgA]], [orgB, queued[orgB]]].sort());
    const raw = await db.sql.query('SELECT * FROM arca_expired_leases(100)');
    expect(Object.keys(raw[0]!).sort()).toEqual(['job_id', 'lease_expires_at', 'org_id']);
    expect((await db.duePolicies(100)).map((r) => r.orgId).sort()).toEqual([orgA, orgB].sort());
    // the same app role, no tenant set: the tables themselves show nothing
    expect(await db.sql.query('SELECT id FROM jobs')).toEqual([]);
    expect(await db.sql.query('SELECT id FROM policies')).toEqual([]);
    // and inside a tenant only that tenant's job
    expect((await db.withTenant(orgA, (tx) => tx.select({ id: jobs.id }).from(jobs))).map((r) => r.id)).toEqual([queued[orgA]]);
  });

  it('withTenant refuses something that is not an organization ID', async () => {
    await expect(db.withTenant("' OR 1=1 --", async () => 1)).rejects.toMatchObject({ code: DbErrorCode.InvalidTenant });
  });

  it('every tenant table forces RLS, and the Drizzle schema matches the migrated columns', async () => {
    const tables = [
      organizations, users, roles, memberships, apiTokens, auditEvents, auditChainHeads, sessions, invitations,
      enrollmentTokens, agents, stores, resources, policies, jobs, jobEvents, snapshots,
    ].map((t) => getTableConfig(t));
    const rls = await scratch.owner<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }[]>`
      SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(${tables.map((t) => t.name)})`;
    expect(rls).toHaveLength(tables.length);
    for (const row of rls) expect([row.relname, row.relrowsecurity, row.relforcerowsecurity]).toEqual([row.relname, true, true]);
    for (const table of tables) {
      const columns = await scratch.owner<{ column_name: string }[]>`
        SELECT column_name FROM information_schema.columns WHERE table_name = ${table.name} ORDER BY column_name`;
      expect(columns.map((c) => c.column_name), table.name).toEqual(table.columns.map((c) => c.name).sort());
      const pk = table.primaryKeys[0]?.columns.map((c) => c.name) ?? table.columns.filter((c) => c.primary).map((c) => c.name);
      expect(pk[0], `${table.name} key leads with the tenant`).toMatch(/^(org_id|id)$/);
    }
    const status = await migrationStatus(postgresSqlClient(scratch.owner));
    expect(status).toMatchObject({ current: true, pending: [], checksumMismatch: [] });
  });
});
