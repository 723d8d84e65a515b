import { randomBytes } from 'node:crypto';
import postgres, { type Sql } from 'postgres';
import { APP_ROLE } from '../database.ts';
import { createPostgresSql, postgresSqlClient } from '../connection/postgres-client.ts';
import { runMigrations } from '../migrations/migration-runner.ts';

/**
 * Test support (exported as `@arca/db/testing`, never used by the app): a fresh database with a
 * random name on the test server, migrated by the superuser (as a schema owner would), plus a
 * login role that is a member of arca_app only — the way production connects. `drop()` removes
 * both. The server comes from ARCA_TEST_DATABASE_URL (default: the build machines' local
 * Postgres, trust authentication).
 */
export interface ScratchDatabase {
  name: string;
  /** superuser connection to the scratch database (migrations, tampering in tests) */
  ownerUrl: string;
  /** connection as the scratch login role (member of arca_app, no BYPASSRLS) */
  appUrl: string;
  /** a superuser pool on the scratch database, closed by drop() */
  owner: Sql;
  drop(): Promise<void>;
}

export const TEST_SERVER_URL = process.env.ARCA_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function createScratchDatabase(options: { migrate?: boolean } = {}): Promise<ScratchDatabase> {
  const name = `arca_test_${randomBytes(6).toString('hex')}`;
  const role = `${name}_app`;
  const server = postgres(TEST_SERVER_URL, { max: 1, onnotice: () => {} });
  const withDb = (db: string, user?: string): string => {
    const url = new URL(TEST_SERVER_URL);
    url.pathname = `/${db}`;
    if (user != null) {
      url.username = user;
      url.password = '';
    }
    return url.toString();
  };
  try {
    await server.unsafe(`CREATE DATABASE ${name}`);
    await server.unsafe(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOBYPASSRLS`);
  } finally {
    await server.end();
  }
  const ownerUrl = withDb(name);
  const owner = createPostgresSql({ url: ownerUrl, max: 2, applicationName: 'arca-test-owner' });
  if (options.migrate !== false) {
    await runMigrations(postgresSqlClient(owner));
    await grantAppRole(owner, role);
  }
  return {
    name,
    ownerUrl,
    appUrl: withDb(name, role),
    owner,
    async drop() {
      await owner.end({ timeout: 5 });
      const admin = postgres(TEST_SERVER_URL, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Makes `role` a member of arca_app (run after migration 0001 created arca_app). */
export async function grantAppRole(owner: Sql, role: string): Promise<void> {
  await owner.unsafe(`GRANT ${APP_ROLE} TO ${role}`);
}
