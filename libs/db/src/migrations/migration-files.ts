import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DbError, DbErrorCode } from '../db-error.ts';

/** libs/db/migrations: committed, reviewed SQL, applied in version order. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  /** the number that prefixes the file name */
  version: number;
  /** file name, e.g. `0001_tenancy_identity_audit.sql` */
  name: string;
  sql: string;
  /** SHA-256 (hex) of the SQL with LF line endings, so a CRLF checkout does not look edited */
  checksum: string;
}

const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

/**
 * Reads every `NNNN_name.sql` of `dir`. Versions must start at 1 and have no gaps or duplicates:
 * a missing file would otherwise be skipped silently on a fresh database.
 */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const name of names) {
    const match = FILE_NAME.exec(name);
    if (match == null) {
      throw new DbError(DbErrorCode.MigrationFilesInvalid, `migration file ${name} must be named NNNN_lowercase_words.sql`);
    }
    const version = Number(match[1]);
    if (version !== migrations.length + 1) {
      throw new DbError(DbErrorCode.MigrationFilesInvalid, `migration ${name} should have version ${migrations.length + 1}: versions must be consecutive from 0001`);
    }
    const sql = await readFile(`${dir}/${name}`, 'utf8');
    migrations.push({ version, name, sql, checksum: migrationChecksum(sql) });
  }
  return migrations;
}
