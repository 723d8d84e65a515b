import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { DbErrorCode, loadMigrations, migrationChecksum, migrationStatus, postgresSqlClient, runMigrations, type Migration } from '../src/index.ts';

describe('migration runner', () => {
  let scratch: ScratchDatabase;
  let migrations: Migration[];

  beforeAll(async () => {
    scratch = await createScratchDatabase({ migrate: false });
    migrations = await loadMigrations();
  });
  afterAll(async () => scratch?.drop());

  it('reports pending migrations, applies them once, concurrent runs serialize', async () => {
    const client = postgresSqlClient(scratch.owner);
    expect(await migrationStatus(client)).toMatchObject({ current: false, applied: [], pending: migrations.map((m) => m.version) });
    const results = await Promise.all([runMigrations(client), runMigrations(client)]);
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, migrations.length]);
    expect(await migrationStatus(client)).toMatchObject({ current: true, pending: [], checksumMismatch: [], unknown: [] });
  });

  it('refuses to run when an applied migration was edited, and status shows it', async () => {
    const client = postgresSqlClient(scratch.owner);
    const edited = migrations.map((m, i) => (i === 0 ? { ...m, sql: `${m.sql}\n-- edited`, checksum: migrationChecksum(`${m.sql}\n-- edited`) } : m));
    await expect(runMigrations(client, edited)).rejects.toMatchObject({ code: DbErrorCode.MigrationChecksumMismatch });
    expect(await migrationStatus(client, edited)).toMatchObject({ current: false, checksumMismatch: [1] });
    // a CRLF checkout of the same file is not an edit
    expect(migrationChecksum(migrations[0]!.sql.replace(/\n/g, '\r\n'))).toBe(migrations[0]!.checksum);
  });

  it('a failing migration rolls back the whole run', async () => {
    const client = postgresSqlClient(scratch.owner);
    const broken = [...migrations, { version: migrations.length + 1, name: 'x_ok.sql', sql: 'CREATE TABLE it_ran (id int)', checksum: 'a' }, { version: migrations.length + 2, name: 'y_bad.sql', sql: 'SELECT * FROM no_such_table', checksum: 'b' }];
    await expect(runMigrations(client, broken)).rejects.toMatchObject({ code: DbErrorCode.MigrationFailed });
    expect(await scratch.owner`SELECT to_regclass('it_ran') AS t`).toEqual([{ t: null }]);
    expect(await migrationStatus(client, broken)).toMatchObject({ pending: [migrations.length + 1, migrations.length + 2] });
  });
});
