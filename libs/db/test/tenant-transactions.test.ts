import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { Database, DbErrorCode, organizations, resultRows, users, type TenantTx } from '../src/index.ts';

/** The database's own message (Drizzle wraps driver errors in a "Failed query" error). */
function messageOf(err: unknown): string {
  return String((err as { cause?: Error }).cause?.message ?? (err as Error).message);
}

async function failureOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return messageOf(err);
  }
  throw new Error('expected a failure');
}

/** What the transaction sees: its connection, its start time and its tenant. */
async function whereAmI(tx: TenantTx): Promise<{ pid: number; started: string; org: string | null }> {
  const [row] = resultRows<{ pid: number; started: string; org: string | null }>(
    await tx.execute(sql`SELECT pg_backend_pid() AS pid, now()::text AS started, current_setting('app.org_id', true) AS org`));
  return row!;
}

// Medium tier: pipelined tenant transactions and shared reads (connection/tenant-transaction.ts)
// on the real Postgres, as the app role, with a pool of ONE connection — so every check below
// runs on the connection the previous one used.
describe('tenant transactions on one pooled connection', () => {
  let scratch: ScratchDatabase;
  let db: Database;
  const orgA = randomUUID();
  const orgB = randomUUID();

  /** The pooled connection outside any transaction: no tenant, no tenant rows. */
  async function expectNoTenantLeft(): Promise<void> {
    const [state] = await db.sql.query<{ org: string | null; users: string }>(
      `SELECT current_setting('app.org_id', true) AS org, (SELECT count(*) FROM users)::text AS users`);
    expect([state?.org ?? '', state?.users]).toEqual(['', '0']);
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    db = await Database.open({ kind: 'postgres', url: scratch.appUrl, poolSize: 1 });
    for (const [org, name] of [[orgA, 'Acme'], [orgB, 'Globex']] as const) {
      await db.withTenant(org, async (tx) => {
        await tx.insert(organizations).values({ id: org, name });
        await tx.insert(users).values({ orgId: org, id: randomUUID(), email: `alice@${name}.test`, displayName: 'Alice' });
      });
    }
  });
  afterAll(async () => {
    await db?.close();
    await scratch?.drop();
  });

  it('commits what fn wrote, rolls back when fn throws, and leaves no tenant behind', async () => {
    const kept = randomUUID();
    await db.withTenant(orgA, (tx) => tx.insert(users).values({ orgId: orgA, id: kept, email: 'kept@acme.test', displayName: 'K' }));
    await expectNoTenantLeft();

    const dropped = randomUUID();
    await expect(db.withTenant(orgA, async (tx) => {
      await tx.insert(users).values({ orgId: orgA, id: dropped, email: 'dropped@acme.test', displayName: 'D' });
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    await expectNoTenantLeft();

    expect(await failureOf(db.withTenant(orgA, async (tx) => {
      await tx.insert(users).values({ orgId: orgA, id: randomUUID(), email: 'x@acme.test', displayName: 'X' });
      await tx.execute(sql`SELECT 1 / 0`);
    }))).toMatch(/division by zero/);
    await expectNoTenantLeft();

    // a failed statement whose error fn swallowed: COMMIT finds the transaction aborted, and says so
    const swallowed = randomUUID();
    await expect(db.withTenant(orgA, async (tx) => {
      await tx.insert(users).values({ orgId: orgA, id: swallowed, email: 'swallowed@acme.test', displayName: 'S' });
      await tx.execute(sql`SELECT 1 / 0`).catch(() => undefined);
      return 'looks fine';
    })).rejects.toMatchObject({ code: DbErrorCode.TransactionAborted });
    await expectNoTenantLeft();

    const ids = await db.readTenant(orgA, async (tx) => (await tx.select({ id: users.id }).from(users)).map((u) => u.id));
    expect(ids).toContain(kept);
    expect(ids).not.toContain(dropped);
    expect(ids).not.toContain(swallowed);
    expect(ids).toHaveLength(2);
  });

  it('a prepared statement reused across tenants on one connection sees each time only its tenant', async () => {
    // more than five executions: Postgres switches to a generic plan, which must still read the tenant at run time
    for (let i = 0; i < 12; i++) {
      const org = i % 2 === 0 ? orgA : orgB;
      const rows = await db.withTenant(org, async (tx) => resultRows<{ org_id: string }>(await tx.execute(sql`SELECT org_id FROM users`)));
      expect(new Set(rows.map((r) => r.org_id))).toEqual(new Set([org]));
      const orgs = await db.readTenant(org, (tx) => tx.select({ id: organizations.id }).from(organizations));
      expect(orgs).toEqual([{ id: org }]);
    }
    await expectNoTenantLeft();
  });

  it('a statement built once runs in each tenant transaction on that transaction\'s connection and tenant', async () => {
    const byOrg = db.statement((orm) => orm.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, sql.placeholder('id'))).prepare('org_by_id'));
    const everyUser = db.statement((orm) => orm.select({ orgId: users.orgId }).from(users).prepare('every_user'));
    for (const org of [orgA, orgB, orgA]) {
      expect(await db.readTenant(org, (tx) => byOrg.run(tx, { id: org }))).toEqual([{ id: org }]);
      // the other tenant's row is invisible even when asked for by ID
      expect(await db.readTenant(org, (tx) => byOrg.run(tx, { id: org === orgA ? orgB : orgA }))).toEqual([]);
      expect(new Set((await db.withTenant(org, (tx) => everyUser.run(tx))).map((u) => u.orgId))).toEqual(new Set([org]));
    }
    await expectNoTenantLeft();
  });

  it('statement reads of one tenant issued together go out as one batch and leave no tenant behind', async () => {
    const byOrg = db.statement((orm) => orm.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, sql.placeholder('id'))).prepare('org_by_id'));
    const where = db.statement((orm) => orm.select({ pid: sql<number>`pg_backend_pid()`, started: sql<string>`now()::text`, org: sql<string>`current_setting('app.org_id', true)` }).from(organizations).prepare('where_am_i'));
    let before = db.transactionsOpened;
    const [a, b, c] = await db.withReadScope(() => Promise.all([db.readStatement(orgA, where), db.readStatement(orgA, where), db.readStatement(orgA, byOrg, { id: orgA })]));
    expect(db.transactionsOpened - before).toBe(1);
    expect(b).toEqual(a);
    expect(a![0]!.org).toBe(orgA);
    expect(c).toEqual([{ id: orgA }]);
    await expectNoTenantLeft();

    // another tenant at the same time, or a later statement: a transaction of its own
    before = db.transactionsOpened;
    const [d, e] = await db.withReadScope(() => Promise.all([db.readStatement(orgA, where), db.readStatement(orgB, where)]));
    expect([d![0]!.org, e![0]!.org]).toEqual([orgA, orgB]);
    const later = await db.withReadScope(async () => [await db.readStatement(orgB, where), await db.readStatement(orgB, where)]);
    expect(later[0]![0]!.started).not.toBe(later[1]![0]!.started);
    expect(db.transactionsOpened - before).toBe(4);

    // a failing statement: its error; the batch rolls back and the connection comes back clean
    const failing = db.statement((orm) => orm.select({ x: sql<number>`1 / (0 * length(${organizations.name}))` }).from(organizations).prepare('failing'));
    const settled = await db.withReadScope(() => Promise.allSettled([db.readStatement(orgA, failing), db.readStatement(orgA, byOrg, { id: orgA })]));
    expect(messageOf((settled[0] as PromiseRejectedResult).reason)).toMatch(/division by zero/);
    expect(settled[1]!.status).toBe('rejected');
    await expectNoTenantLeft();
    expect(await db.readStatement(orgB, byOrg, { id: orgB })).toEqual([{ id: orgB }]);
    await expectNoTenantLeft();
  });

  it('writeStatement runs one statement as a write transaction in one socket write: commits, sees only its tenant, rolls back on failure', async () => {
    const rename = (org: string, name: string) =>
      db.writeStatement<{ name: string; org: string }>(orgA, sql`UPDATE organizations SET name = ${name} WHERE id = ${org} RETURNING name, current_setting('app.org_id', true) AS org`);
    await rename(orgA, 'Acme warm-up'); // the statement is prepared on the connection once
    const writes = { count: 0 };
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof write>) {
      writes.count++;
      return write.apply(this, args);
    } as typeof write;
    let renamed: { name: string; org: string }[];
    try {
      renamed = await rename(orgA, 'Acme 2');
    } finally {
      net.Socket.prototype.write = write;
    }
    expect(renamed).toEqual([{ name: 'Acme 2', org: orgA }]);
    expect(writes.count).toBe(1);
    await expectNoTenantLeft();
    expect(await db.readTenant(orgA, (tx) => tx.select({ name: organizations.name }).from(organizations))).toEqual([{ name: 'Acme 2' }]);

    // the other tenant's row is not there for it
    expect(await rename(orgB, 'taken over')).toEqual([]);
    expect(await db.readTenant(orgB, (tx) => tx.select({ name: organizations.name }).from(organizations))).toEqual([{ name: 'Globex' }]);

    // a statement that fails after changing a row: its own error, nothing kept
    expect(await failureOf(db.writeStatement(orgA, sql`
      WITH u AS (UPDATE organizations SET name = 'never' WHERE id = ${orgA} RETURNING id)
      SELECT 1 / ((SELECT count(*) FROM u) - 1) AS x`))).toMatch(/division by zero/);
    await expectNoTenantLeft();
    expect(await db.readTenant(orgA, (tx) => tx.select({ name: organizations.name }).from(organizations))).toEqual([{ name: 'Acme 2' }]);
    await rename(orgA, 'Acme');
  });

  it('readTenant is read-only', async () => {
    expect(await failureOf(db.readTenant(orgA, (tx) => tx.update(organizations).set({ name: 'renamed' }).where(eq(organizations.id, orgA)))))
      .toMatch(/read-only transaction/);
    await expectNoTenantLeft();
  });

  it('overlapping reads of one tenant in a read scope share one transaction; other cases get their own', async () => {
    let before = db.transactionsOpened;
    const [a, b, c] = await db.withReadScope(() => Promise.all([db.readTenant(orgA, whereAmI), db.readTenant(orgA, whereAmI), db.readTenant(orgA, whereAmI)]));
    expect(db.transactionsOpened - before).toBe(1);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(a!.org).toBe(orgA);

    // outside a scope: one each
    before = db.transactionsOpened;
    const [d, e] = await Promise.all([db.readTenant(orgA, whereAmI), db.readTenant(orgA, whereAmI)]);
    expect(db.transactionsOpened - before).toBe(2);
    expect(d!.started).not.toBe(e!.started);

    // another tenant while one is in flight: its own transaction, its own tenant
    before = db.transactionsOpened;
    const [f, g] = await db.withReadScope(() => Promise.all([db.readTenant(orgA, whereAmI), db.readTenant(orgB, whereAmI)]));
    expect(db.transactionsOpened - before).toBe(2);
    expect([f!.org, g!.org]).toEqual([orgA, orgB]);

    // reads that do not overlap: the first transaction is committed before the second opens
    before = db.transactionsOpened;
    const [h, i] = await db.withReadScope(async () => [await db.readTenant(orgA, whereAmI), await db.readTenant(orgA, whereAmI)]);
    expect(db.transactionsOpened - before).toBe(2);
    expect(h!.started).not.toBe(i!.started);

    // separate scopes (requests) never share
    before = db.transactionsOpened;
    await Promise.all([db.withReadScope(() => db.readTenant(orgA, whereAmI)), db.withReadScope(() => db.readTenant(orgA, whereAmI))]);
    expect(db.transactionsOpened - before).toBe(2);
    await expectNoTenantLeft();
  });

  it('a failing read rolls the shared transaction back and the connection comes back clean', async () => {
    const results = await db.withReadScope(() => Promise.allSettled([
      db.readTenant(orgA, async (tx) => tx.execute(sql`SELECT 1 / 0`)),
      // the same path through Drizzle as the first, so it is sent right behind it
      db.readTenant(orgA, async (tx) => tx.execute(sql`SELECT org_id FROM users`)),
      db.readTenant(orgA, async () => { throw new Error('not found'); }),
    ]));
    expect(results[0]!.status).toBe('rejected');
    expect(messageOf((results[0] as PromiseRejectedResult).reason)).toMatch(/division by zero/);
    // the second read was pipelined behind the failure: the transaction it shared was aborted
    expect(results[1]!.status).toBe('rejected');
    expect(messageOf((results[1] as PromiseRejectedResult).reason)).toMatch(/current transaction is aborted/);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ message: 'not found' });
    await expectNoTenantLeft();
    expect(await db.readTenant(orgA, (tx) => tx.select().from(users))).toHaveLength(2);
  });

  it('a read holding the only connection never blocks a write of the same request for good', async () => {
    // a request whose one resolver reads while another writes (an audited refusal, say): the
    // shared read ends when its last read does, so the write gets the connection then
    const written = randomUUID();
    const [rows] = await db.withReadScope(() => Promise.all([
      db.readTenant(orgA, async (tx) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return tx.select().from(organizations);
      }),
      (async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        await db.withTenant(orgA, (tx) => tx.insert(users).values({ orgId: orgA, id: written, email: 'w@acme.test', displayName: 'W' }));
      })(),
    ]));
    expect(rows).toHaveLength(1);
    expect(await db.readTenant(orgA, (tx) => tx.select().from(users).where(eq(users.id, written)))).toHaveLength(1);
    await expectNoTenantLeft();
  });
});
