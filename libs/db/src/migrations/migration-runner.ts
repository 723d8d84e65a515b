import { DbError, DbErrorCode } from '../db-error.ts';
import type { SqlClient } from '../connection/sql-client.ts';
import { loadMigrations, type Migration } from './migration-files.ts';

/** The bookkeeping table: one row per applied migration, with the checksum it had. */
export const MIGRATIONS_TABLE = 'arca_schema_migrations';
/** pg_advisory_xact_lock key that serializes concurrent runs (replicas started with --migrate). */
const MIGRATION_LOCK_KEY = 0x41524341_4d494752n; // "ARCAMIGR"

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

export interface MigrationStatus {
  /** every known migration is applied and none has changed */
  current: boolean;
  applied: number[];
  pending: number[];
  /** applied migrations whose file has changed since */
  checksumMismatch: number[];
  /** applied versions this build does not know (the database is newer than the code) */
  unknown: number[];
}

/**
 * Applies every pending migration in one transaction, under an advisory lock, after checking
 * that the already-applied ones are unchanged. Postgres DDL is transactional, so a failure leaves
 * the database exactly as it was. Run as the schema owner, never as the application role.
 */
export async function runMigrations(client: SqlClient, migrations?: Migration[]): Promise<{ applied: Migration[] }> {
  const known = migrations ?? (await loadMigrations());
  return client.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.exec(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
      version     integer     PRIMARY KEY,
      name        text        NOT NULL,
      checksum    text        NOT NULL,
      applied_at  timestamptz NOT NULL DEFAULT now()
    )`);
    const status = compare(known, await appliedRows(tx));
    if (status.checksumMismatch.length > 0) throw checksumError(status.checksumMismatch, known);
    const pending = known.filter((m) => status.pending.includes(m.version));
    for (const migration of pending) {
      try {
        await tx.exec(migration.sql);
      } catch (err) {
        throw new DbError(DbErrorCode.MigrationFailed, `migration ${migration.name} failed: ${(err as Error).message}; nothing was applied`, { cause: err });
      }
      await tx.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name, checksum) VALUES ($1, $2, $3)`, [migration.version, migration.name, migration.checksum]);
    }
    // the application role checks readiness (/readyz) against this table
    await tx.exec(`DO $$ BEGIN
      IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'arca_app') THEN
        GRANT SELECT ON ${MIGRATIONS_TABLE} TO arca_app;
      END IF;
    END $$`);
    return { applied: pending };
  });
}

/** Compares the database with this build's migrations; readable by the application role. */
export async function migrationStatus(client: SqlClient, migrations?: Migration[]): Promise<MigrationStatus> {
  const known = migrations ?? (await loadMigrations());
  const [exists] = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [MIGRATIONS_TABLE]);
  return compare(known, exists?.present === true ? await appliedRows(client) : []);
}

async function appliedRows(client: SqlClient): Promise<AppliedRow[]> {
  return client.query<AppliedRow>(`SELECT version, name, checksum FROM ${MIGRATIONS_TABLE} ORDER BY version`);
}

function compare(known: Migration[], applied: AppliedRow[]): MigrationStatus {
  const byVersion = new Map(applied.map((row) => [Number(row.version), row]));
  const knownVersions = new Set(known.map((m) => m.version));
  const status: MigrationStatus = { current: false, applied: [], pending: [], checksumMismatch: [], unknown: [] };
  for (const migration of known) {
    const row = byVersion.get(migration.version);
    if (row == null) status.pending.push(migration.version);
    else {
      status.applied.push(migration.version);
      if (row.checksum !== migration.checksum) status.checksumMismatch.push(migration.version);
    }
  }
  status.unknown = [...byVersion.keys()].filter((v) => !knownVersions.has(v));
  status.current = status.pending.length === 0 && status.checksumMismatch.length === 0;
  return status;
}

function checksumError(versions: number[], known: Migration[]): DbError {
  const names = versions.map((v) => known.find((m) => m.version === v)?.name ?? String(v)).join(', ');
  return new DbError(
    DbErrorCode.MigrationChecksumMismatch,
    `applied migration(s) ${names} changed after they were applied; never edit an applied migration — restore the file and add a new migration instead`,
  );
}
