import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestStore, tempDir } from './helpers.ts';

// A real PostgreSQL round trip through the real `arca` executable: pg_dump's custom-format output
// backed up with `--stdin-from-command`, restored (by `restore` and by `cat | pg_restore`) into
// fresh databases, rows compared. The server: ARCA_TEST_DATABASE_URL (default: the build
// machines' local Postgres with trust auth, postgres://postgres@127.0.0.1:5432/postgres).
// pg_dump/pg_restore/psql come from postgresql-client (.ci/run installs it when missing).

const server = new URL(process.env.ARCA_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const conn = ['--host', server.hostname, '--port', server.port || '5432', '--username', decodeURIComponent(server.username || 'postgres'), '--no-password'];
const pgEnv = { ...process.env, ...(server.password ? { PGPASSWORD: decodeURIComponent(server.password) } : {}) };

function psql(database: string, sql: string): string {
  const r = spawnSync('psql', [...conn, '--dbname', database, '--no-psqlrc', '--tuples-only', '--no-align', '--set', 'ON_ERROR_STOP=1', '--command', sql], { env: pgEnv, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Run a command with `input` on stdin; resolves with its exit status and stderr. */
function run(cmd: string, args: string[], input?: Buffer): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: pgEnv, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

const ROWS_SQL = 'SELECT id, name, amount::text, encode(payload, \'hex\') FROM orders ORDER BY id';

describe('PostgreSQL through arca backup --stdin-from-command -- pg_dump', () => {
  const suffix = randomBytes(6).toString('hex');
  const source = `arca_pg_src_${suffix}`;
  const restored = `arca_pg_rst_${suffix}`;
  const piped = `arca_pg_pipe_${suffix}`;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let store: TestStore;

  beforeAll(async () => {
    tmp = await tempDir('arca-pg-');
    store = new TestStore(tmp.dir);
    await store.init();
    for (const db of [source, restored, piped]) psql('postgres', `CREATE DATABASE ${db}`);
    psql(source, `CREATE TABLE orders (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), payload bytea);
      INSERT INTO orders SELECT g, 'order ' || g || ' – ünïcode', g * 1.25, sha256(g::text::bytea) FROM generate_series(1, 5000) g;
      CREATE INDEX orders_name ON orders (name);`);
  });

  afterAll(async () => {
    for (const db of [source, restored, piped]) {
      try {
        psql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      } catch {
        // best effort: the server may be gone
      }
    }
    await tmp?.cleanup();
  });

  it('backs up a database with pg_dump, restores the dump and pg_restores it with every row intact', async () => {
    const rows = psql(source, ROWS_SQL);
    expect(rows.split('\n').filter(Boolean)).toHaveLength(5000);
    const name = `postgres/${source}.dump`;
    const b = await store.run(['backup', '--json', '--tag', 'postgres', '--stdin-from-command', '--stdin-filename', name, '--', 'pg_dump', '--format=custom', ...conn, '--dbname', source]);
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
    expect(psql(restored, ROWS_SQL)).toBe(rows);

    // the documented pipe: arca cat ID:/postgres/DB.dump | pg_restore -d DB
    const cat = await store.run(['cat', `${snap.id}:/${name}`]);
    expect(cat.code).toBe(0);
    expect(cat.stdoutBytes.equals(dump)).toBe(true);
    const piping = await run('pg_restore', [...conn, '--dbname', piped, '--exit-on-error'], cat.stdoutBytes);
    expect(piping).toEqual({ code: 0, stderr: '' });
    expect(psql(piped, ROWS_SQL)).toBe(rows);
    expect(psql(piped, "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1")).toBe('orders_name\norders_pkey\n');
  });

  it('pg_dump of a database that does not exist fails the backup, with pg_dump\'s own message, and saves nothing', async () => {
    const before = (await store.run(['snapshots', '--json'])).stdout;
    const r = await store.run(['backup', '--stdin-from-command', '--stdin-filename', 'postgres/missing.dump', '--', 'pg_dump', '--format=custom', ...conn, '--dbname', `${source}_missing`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/command "pg_dump" exited with status 1; no snapshot was saved/);
    expect(r.stderr).toMatch(/database "arca_pg_src_[0-9a-f]+_missing" does not exist/);
    expect((await store.run(['snapshots', '--json'])).stdout).toBe(before);
  });
});
