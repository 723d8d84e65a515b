import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { sql, type ExtractTablesWithRelations, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { Sql } from 'postgres';
import { DbError, DbErrorCode } from './db-error.ts';
import { pgliteSqlClient } from './connection/pglite-client.ts';
import { createPostgresSql, postgresSqlClient } from './connection/postgres-client.ts';
import type { SqlClient } from './connection/sql-client.ts';
import { OpenTenantTransaction, PreparedStatementBudget, ReadScopes, runTenantTransaction, type DrizzleParts } from './connection/tenant-transaction.ts';
import { runMigrations } from './migrations/migration-runner.ts';
import * as schema from './schema/index.ts';

export type Schema = typeof schema;
/** What `Database.statement` builds with: Drizzle's query builder (never executed directly). */
export type StatementBuilder = PgDatabase<PgQueryResultHKT, Schema>;

/**
 * A statement built once by Drizzle, with `sql.placeholder(name)` for its parameters, and run in
 * any tenant transaction: the SQL text is not rebuilt on every request (Drizzle's query building
 * was ~20% of the control plane's CPU under load).
 */
export interface TenantStatement<T> {
  run(tx: TenantTx, values?: Record<string, unknown>): Promise<T>;
}
/** A Drizzle transaction scoped to one tenant: row-level security admits only that tenant's rows. */
export type TenantTx = PgTransaction<PgQueryResultHKT, Schema, ExtractTablesWithRelations<Schema>>;
type AppOrm = PgDatabase<PgQueryResultHKT, Schema>;

/** The role the application runs as (created by migration 0001). */
export const APP_ROLE = 'arca_app';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type DatabaseOptions =
  | { kind: 'postgres'; url: string; poolSize?: number; applicationName?: string }
  | {
      kind: 'pglite';
      /** data directory; created if missing. Omit for an in-memory database (tests). */
      dataDir?: string;
      /** apply pending migrations while still the embedded superuser, before dropping to arca_app */
      migrate?: boolean;
    };

/**
 * The application's connection: Drizzle for queries, `withTenant` for every tenant access.
 *
 * Postgres: connect as a login role that is a member of arca_app and has neither SUPERUSER nor
 * BYPASSRLS (`assertRuntimeRoleEnforcesRls` refuses anything else). PGlite: the embedded database
 * has a single superuser session, so after migrations the session switches to arca_app with
 * `SET ROLE`; row-level security then applies to every query (docs/control-plane.md explains the
 * residual risk: SQL that could run `RESET ROLE` would regain superuser rights).
 */
export class Database {
  readonly kind: 'postgres' | 'pglite';
  /** raw SQL (health checks, migration status); not tenant-scoped */
  readonly sql: SqlClient;
  /** tenant transactions opened so far (withTenant and readTenant; shared reads count once) */
  transactionsOpened = 0;
  private readonly orm: AppOrm;
  private readonly closeFn: () => Promise<void>;
  /** Postgres only: the pool and what pipelined tenant transactions are built from */
  private readonly pg: { pool: Sql; parts: DrizzleParts; budget: PreparedStatementBudget } | null;
  private readonly readScopes = new ReadScopes();

  private constructor(kind: 'postgres' | 'pglite', client: SqlClient, orm: AppOrm, close: () => Promise<void>, pool: Sql | null = null) {
    this.kind = kind;
    this.sql = client;
    this.orm = orm;
    this.closeFn = close;
    if (pool == null) {
      this.pg = null;
    } else {
      // the Drizzle instance's own dialect and relational schema, for the sessions of tenant transactions
      const { dialect, schema: relational, options } = (orm as unknown as { session: DrizzleParts }).session;
      this.pg = { pool, parts: { dialect, schema: relational, options }, budget: new PreparedStatementBudget() };
    }
  }

  static async open(options: DatabaseOptions): Promise<Database> {
    if (options.kind === 'postgres') {
      const pool: Sql = createPostgresSql({ url: options.url, max: options.poolSize, applicationName: options.applicationName });
      const orm = drizzlePostgres({ client: pool, schema }) as unknown as AppOrm;
      const db = new Database('postgres', postgresSqlClient(pool), orm, () => pool.end({ timeout: 5 }), pool);
      await db.ping().catch(async (err: unknown) => {
        await db.close();
        throw new DbError(DbErrorCode.ConnectionFailed, `cannot connect to the database: ${(err as Error).message}`, { cause: err });
      });
      return db;
    }
    if (options.dataDir != null) await mkdir(options.dataDir, { recursive: true });
    const pg = new PGlite(options.dataDir);
    await pg.waitReady;
    const client = pgliteSqlClient(pg);
    if (options.migrate === true) await runMigrations(client);
    const [role] = await client.query<{ present: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS present`, [APP_ROLE]);
    if (role?.present !== true) {
      await pg.close();
      throw new DbError(DbErrorCode.ConnectionFailed, `the embedded database has no ${APP_ROLE} role yet: run the migrate command (or start with --migrate)`);
    }
    // From here on the single session runs as the application role: RLS applies to everything.
    await client.exec(`SET ROLE ${APP_ROLE}`);
    const orm = drizzlePglite({ client: pg, schema }) as unknown as AppOrm;
    return new Database('pglite', client, orm, () => pg.close());
  }

  /**
   * Runs `fn` in a transaction whose tenant is `orgId`: `set_config('app.org_id', …, true)` is
   * local to the transaction, so a pooled connection never carries a tenant into the next one.
   * COMMIT when `fn` returns, ROLLBACK when it throws. On Postgres, BEGIN and set_config travel
   * with the first query (connection/tenant-transaction.ts).
   */
  async withTenant<T>(orgId: string, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    assertTenant(orgId);
    this.transactionsOpened++;
    if (this.pg == null) return this.embeddedTenant(orgId, false, fn);
    return runTenantTransaction(() => this.openTenant(orgId, false), fn);
  }

  /**
   * Like `withTenant`, for reads: a READ ONLY transaction (a write in it fails). Inside
   * `withReadScope` (one per HTTP request), overlapping reads of the same tenant share one
   * transaction — a GraphQL request's resolvers, started together, open one instead of one each.
   * Never use it for work that must commit.
   */
  async readTenant<T>(orgId: string, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    assertTenant(orgId);
    if (this.pg == null) {
      this.transactionsOpened++;
      return this.embeddedTenant(orgId, true, fn);
    }
    return this.readScopes.read(orgId, () => {
      this.transactionsOpened++;
      return this.openTenant(orgId, true);
    }, fn);
  }

  /**
   * Runs one prepared statement as a read of `orgId`: like `readTenant(orgId, (tx) =>
   * statement.run(tx, values))`, but on Postgres the transaction is sent as one batch — BEGIN
   * READ ONLY, set_config, the statement and COMMIT in one socket write and one round trip —
   * shared with the other statement reads of the same tenant issued by the request in the same
   * tick (a GraphQL request's root resolvers).
   */
  async readStatement<T>(orgId: string, statement: TenantStatement<T>, values?: Record<string, unknown>): Promise<T> {
    assertTenant(orgId);
    if (this.pg == null) return this.readTenant(orgId, (tx) => statement.run(tx, values));
    return this.readScopes.readStatement(orgId, (onTickEnd) => {
      this.transactionsOpened++;
      return this.openTenant(orgId, true, onTickEnd);
    }, (tx) => statement.run(tx, values));
  }

  /**
   * One statement as a write transaction of `orgId`: on Postgres BEGIN, set_config, the statement
   * and COMMIT leave in one socket write — one round trip, where `withTenant` needs one per
   * statement plus one for the COMMIT. Answers the statement's rows once the COMMIT is confirmed
   * (a failed statement throws its own error; the transaction is rolled back). For the hot paths
   * that a data-modifying CTE can express in one statement (leasing and completing jobs).
   */
  async writeStatement<R>(orgId: string, query: SQL): Promise<R[]> {
    assertTenant(orgId);
    if (this.pg == null) return this.withTenant(orgId, async (tx) => resultRows<R>(await tx.execute(query)));
    this.transactionsOpened++;
    let tickEnded!: () => void;
    const setUpFlushing = new Promise<void>((resolve) => (tickEnded = resolve));
    const transaction = await this.openTenant(orgId, false, () => tickEnded());
    // issued now, in the tick the transaction opened (all of it is queued on the connection
    // before the set-up's setImmediate fires); the COMMIT follows it from there, in the same write
    const statement = Promise.resolve(transaction.tx.execute(query));
    statement.catch(() => undefined);
    await setUpFlushing;
    const committed = transaction.finish(true);
    let rows: R[];
    try {
      rows = resultRows<R>(await statement);
    } catch (err) {
      await committed.catch(() => undefined);
      throw transaction.setupError ?? err;
    }
    await committed;
    return rows;
  }

  /** Runs `fn` (and everything it starts) in a scope of shared reads (see `readTenant`). */
  withReadScope<T>(fn: () => T): T {
    return this.pg == null ? fn() : this.readScopes.run(fn);
  }

  /** PGlite: one session, so one transaction at a time and nothing to pipeline. */
  private embeddedTenant<T>(orgId: string, readOnly: boolean, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    return this.orm.transaction(async (tx) => {
      await tx.execute(sql`SELECT set_config('app.org_id', ${orgId}, true)`);
      return fn(tx as TenantTx);
    }, readOnly ? { accessMode: 'read only' } : undefined);
  }

  private openTenant(orgId: string, readOnly: boolean, onTickEnd?: () => void): Promise<OpenTenantTransaction<TenantTx>> {
    const pg = this.pg!;
    return OpenTenantTransaction.open<TenantTx>(pg.pool, pg.parts, pg.budget, orgId, readOnly, onTickEnd);
  }

  /**
   * Builds a statement once (`build` must end with `.prepare(name)`): `run(tx, values)` executes
   * it on `tx`'s connection, inside its tenant transaction. Do not pass Dates as placeholder values
   * (they skip the column's encoder): pass ISO strings.
   */
  statement<T>(build: (orm: StatementBuilder) => { execute(values?: Record<string, unknown>): Promise<T> }): TenantStatement<T> {
    const template = build(this.orm);
    return {
      run(tx, values) {
        // Drizzle's prepared query runs on its `client`: the transaction's, not the pool the template was built on
        const client = (tx as unknown as { session: { client: unknown } }).session.client;
        return (Object.create(template, { client: { value: client } }) as typeof template).execute(values);
      },
    };
  }

  /**
   * Cross-tenant housekeeping (migrations/0003, docs/fleet.md §1): policies whose next slot has
   * come, across every organization. Only IDs and times; the scheduler then handles each inside
   * its tenant, re-checking under a row lock.
   */
  async duePolicies(maxRows: number): Promise<{ orgId: string; policyId: string; nextRunAt: Date }[]> {
    const rows = await this.sql.query<{ org_id: string; policy_id: string; next_run_at: Date | string }>('SELECT org_id, policy_id, next_run_at FROM arca_due_policies($1)', [maxRows]);
    return rows.map((r) => ({ orgId: r.org_id, policyId: r.policy_id, nextRunAt: new Date(r.next_run_at) }));
  }

  /** Jobs whose lease has expired, across every organization (the sweeper's work list; IDs and times only). */
  async expiredLeases(maxRows: number): Promise<{ orgId: string; jobId: string; leaseExpiresAt: Date }[]> {
    const rows = await this.sql.query<{ org_id: string; job_id: string; lease_expires_at: Date | string }>('SELECT org_id, job_id, lease_expires_at FROM arca_expired_leases($1)', [maxRows]);
    return rows.map((r) => ({ orgId: r.org_id, jobId: r.job_id, leaseExpiresAt: new Date(r.lease_expires_at) }));
  }

  /**
   * LISTEN on `channel` (Postgres: postgres.js keeps a dedicated connection and re-listens after a
   * reconnect). PGlite has one session and one process: answers null, and callers wake their
   * waiters in-process instead.
   */
  async listen(channel: string, onNotify: (payload: string) => void): Promise<{ unlisten(): Promise<void> } | null> {
    if (this.pg == null) return null;
    const sub = await this.pg.pool.listen(channel, onNotify);
    return { unlisten: () => sub.unlisten() };
  }

  async ping(): Promise<void> {
    await this.sql.query('SELECT 1');
  }

  /** Refuses a runtime role that would silently bypass row-level security. */
  async assertRuntimeRoleEnforcesRls(): Promise<void> {
    const [row] = await this.sql.query<{ role: string; super: boolean; bypass: boolean; member: boolean }>(
      `SELECT current_user AS role, r.rolsuper AS super, r.rolbypassrls AS bypass, pg_has_role(current_user, $1, 'USAGE') AS member
         FROM pg_roles r WHERE r.rolname = current_user`,
      [APP_ROLE],
    );
    if (row == null) throw new DbError(DbErrorCode.InsecureRole, 'cannot read the current role');
    if (row.super || row.bypass) {
      throw new DbError(
        DbErrorCode.InsecureRole,
        `the database role "${row.role}" is a superuser or has BYPASSRLS, so tenant isolation would not apply: connect DATABASE_URL as a login role granted ${APP_ROLE} (docs/control-plane.md)`,
      );
    }
    if (!row.member) {
      throw new DbError(DbErrorCode.InsecureRole, `the database role "${row.role}" is not a member of ${APP_ROLE}: GRANT ${APP_ROLE} TO "${row.role}"`);
    }
  }

  async close(): Promise<void> {
    await this.closeFn();
  }
}

function assertTenant(orgId: string): void {
  if (!UUID.test(orgId)) throw new DbError(DbErrorCode.InvalidTenant, 'the organization ID must be a UUID');
}

/** The rows of a Drizzle `execute` result, whichever driver produced it. */
export function resultRows<T>(result: unknown): T[] {
  if (Array.isArray(result)) return [...result] as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
