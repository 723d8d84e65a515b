import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';

/**
 * The test PostgreSQL server: ARCA_TEST_DATABASE_URL (default: the build machines' local Postgres
 * with trust auth, postgres://postgres@127.0.0.1:5432/postgres). The client tools (psql, pg_dump,
 * pg_restore) come from postgresql-client, which .ci/run installs when missing.
 */
const server = new URL(process.env.ARCA_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
export const PG_HOST = server.hostname;
export const PG_PORT = Number(server.port || '5432');
export const PG_USER = decodeURIComponent(server.username || 'postgres');
/** libpq connection options for the client tools */
export const PG_CONN = ['--host', PG_HOST, '--port', String(PG_PORT), '--username', PG_USER, '--no-password'];
/** A password in the URL reaches the tools as PGPASSWORD (arca itself never passes one). */
export const PG_ENV: NodeJS.ProcessEnv = { ...process.env, ...(server.password ? { PGPASSWORD: decodeURIComponent(server.password) } : {}) };

/** Run SQL with psql; returns its unaligned, tuples-only output. */
export function psql(database: string, sql: string): string {
  const r = spawnSync('psql', [...PG_CONN, '--dbname', database, '--no-psqlrc', '--tuples-only', '--no-align', '--set', 'ON_ERROR_STOP=1', '--command', sql], { env: PG_ENV, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Drop scratch databases, ignoring a server that is gone. */
export function dropDatabases(...names: string[]): void {
  for (const db of names) {
    try {
      psql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    } catch {
      // best effort
    }
  }
}

/** Run a client tool (pg_restore) with `input` on stdin; its exit status and stderr. */
export function runTool(cmd: string, args: string[], input?: Buffer): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: PG_ENV, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** A table with rows of several types, and the query that lists them in order. */
export const ORDERS_TABLE_SQL = `CREATE TABLE orders (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2), payload bytea);
  INSERT INTO orders SELECT g, 'order ' || g || ' – ünïcode', g * 1.25, sha256(g::text::bytea) FROM generate_series(1, 5000) g;
  CREATE INDEX orders_name ON orders (name);`;
export const ORDERS_ROWS_SQL = 'SELECT id, name, amount::text, encode(payload, \'hex\') FROM orders ORDER BY id';

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
