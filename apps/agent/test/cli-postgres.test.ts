import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestStore, tempDir } from './helpers.ts';
import { dropDatabases, ORDERS_ROWS_SQL, ORDERS_TABLE_SQL, PG_CONN as conn, PG_ENV, psql, runTool as run } from './postgres-support.ts';

// A real PostgreSQL round trip through the real `arca` executable: pg_dump's custom-format output
// backed up with `--stdin-from-command`, restored (by `restore` and by `cat | pg_restore`) into
// fresh databases, rows compared (the server and tools: postgres-support.ts).

describe('PostgreSQL through arca backup --stdin-from-command -- pg_dump', () => {
  const suffix = randomBytes(6).toString('hex');
  const source = `arca_pg_src_${suffix}`;
  const restored = `arca_pg_rst_${suffix}`;
  const piped = `arca_pg_pipe_${suffix}`;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let store: TestStore;
  // arca's environment in these runs is minimal (helpers.ts): a password in the test URL is passed on
  const pgPassword = { env: { PGPASSWORD: PG_ENV.PGPASSWORD } };

  beforeAll(async () => {
    tmp = await tempDir('arca-pg-');
    store = new TestStore(tmp.dir);
    await store.init();
    for (const db of [source, restored, piped]) psql('postgres', `CREATE DATABASE ${db}`);
    psql(source, ORDERS_TABLE_SQL);
  });

  afterAll(async () => {
    dropDatabases(source, restored, piped);
    await tmp?.cleanup();
  });

  it('backs up a database with pg_dump, restores the dump and pg_restores it with every row intact', async () => {
    const rows = psql(source, ORDERS_ROWS_SQL);
    expect(rows.split('\n').filter(Boolean)).toHaveLength(5000);
    const name = `postgres/${source}.dump`;
    const b = await store.run(['backup', '--json', '--tag', 'postgres', '--stdin-from-command', '--stdin-filename', name, '--', 'pg_dump', '--format=custom', ...conn, '--dbname', source], pgPassword);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    const snap = JSON.parse(b.stdout) as { id: string; paths: string[]; summary: { bytesTotal: number } };
    expect(snap.paths).toEqual([`/${name}`]);
    expect(snap.summary.bytesTotal).toBeGreaterThan(10_000);

    // arca restore ID:/postgres/DB.dump --target DIR, then pg_restore the file
    const target = path.join(tmp.dir, 'restore');
    const r = await store.run(['restore', `${snap.id}:/${name}`, '--target', target]);
    expect(r.code).toBe(0);
    const dump = await readFile(path.join(target, `${source}.dump`));
    expect(dump.subarray(0, 5).toString()).toBe('PGDMP'); // the custom format's magic
    const pgRestore = await run('pg_restore', [...conn, '--dbname', restored, '--exit-on-error', path.join(target, `${source}.dump`)]);
    expect(pgRestore).toEqual({ code: 0, stderr: '' });
    expect(psql(restored, ORDERS_ROWS_SQL)).toBe(rows);

    // the documented pipe: arca cat ID:/postgres/DB.dump | pg_restore -d DB
    const cat = await store.run(['cat', `${snap.id}:/${name}`]);
    expect(cat.code).toBe(0);
    expect(cat.stdoutBytes.equals(dump)).toBe(true);
    const piping = await run('pg_restore', [...conn, '--dbname', piped, '--exit-on-error'], cat.stdoutBytes);
    expect(piping).toEqual({ code: 0, stderr: '' });
    expect(psql(piped, ORDERS_ROWS_SQL)).toBe(rows);
    expect(psql(piped, "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1")).toBe('orders_name\norders_pkey\n');
  });

  it('pg_dump of a database that does not exist fails the backup, with pg_dump\'s own message, and saves nothing', async () => {
    const before = (await store.run(['snapshots', '--json'])).stdout;
    const r = await store.run(['backup', '--stdin-from-command', '--stdin-filename', 'postgres/missing.dump', '--', 'pg_dump', '--format=custom', ...conn, '--dbname', `${source}_missing`], pgPassword);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/command "pg_dump" exited with status 1; no snapshot was saved/);
    expect(r.stderr).toMatch(/database "arca_pg_src_[0-9a-f]+_missing" does not exist/);
    expect((await store.run(['snapshots', '--json'])).stdout).toBe(before);
  });
});
