/**
 * @arca/db — the control plane's Postgres schema (Drizzle), its committed SQL migrations with a
 * checksummed runner, row-level-security tenancy (`Database.withTenant`), and the embedded PGlite
 * mode. No Nest here: the control plane wraps these in providers.
 */
export * from './schema/index.ts';
export { Database, APP_ROLE, resultRows, type DatabaseOptions, type Schema, type StatementBuilder, type TenantStatement, type TenantTx } from './database.ts';
export { DbError, DbErrorCode, isDbError } from './db-error.ts';
export type { SqlClient } from './connection/sql-client.ts';
export { createPostgresSql, postgresSqlClient } from './connection/postgres-client.ts';
export { pgliteSqlClient } from './connection/pglite-client.ts';
export { loadMigrations, migrationChecksum, MIGRATIONS_DIR, type Migration } from './migrations/migration-files.ts';
export { runMigrations, migrationStatus, MIGRATIONS_TABLE, type MigrationStatus } from './migrations/migration-runner.ts';
export { columnList, rowFromDriver } from './connection/driver-rows.ts';
