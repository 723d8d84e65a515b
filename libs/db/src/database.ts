import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { sql, type ExtractTablesWithRelations } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { Sql } from 'postgres';
import { DbError, DbErrorCode } from './db-error.ts';
import { pgliteSqlClient } from './connection/pglite-client.ts';
import { createPostgresSql, postgresSqlClient } from './connection/postgres-client.ts';
import type { SqlClient } from './connection/sql-client.ts';
import { runMigrations } from './migrations/migration-runner.ts';
import * as schema from './schema/index.ts';

export type Schema = typeof schema;
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
  private readonly orm: AppOrm;
  private readonly closeFn: () => Promise<void>;

  private constructor(kind: 'postgres' | 'pglite', client: SqlClient, orm: AppOrm, close: () => Promise<void>) {
    this.kind = kind;
    this.sql = client;
    this.orm = orm;
    this.closeFn = close;
  }

  static async open(options: DatabaseOptions): Promise<Database> {
    if (options.kind === 'postgres') {
      const pool: Sql = createPostgresSql({ url: options.url, max: options.poolSize, applicationName: options.applicationName });
      const orm = drizzlePostgres({ client: pool, schema }) as unknown as AppOrm;
      const db = new Database('postgres', postgresSqlClient(pool), orm, () => pool.end({ timeout: 5 }));
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
   */
  async withTenant<T>(orgId: string, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    if (!UUID.test(orgId)) throw new DbError(DbErrorCode.InvalidTenant, 'the organization ID must be a UUID');
    return this.orm.transaction(async (tx) => {
      await tx.execute(sql`SELECT set_config('app.org_id', ${orgId}, true)`);
      return fn(tx as TenantTx);
    });
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

/** The rows of a Drizzle `execute` result, whichever driver produced it. */
export function resultRows<T>(result: unknown): T[] {
  if (Array.isArray(result)) return [...result] as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}
