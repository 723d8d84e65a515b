import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';

/**
 * The proxy's local state: one SQLite database (node:sqlite) in ARCA_KP_DATA_DIR, shared by the
 * running server and the custodian's CLI commands (WAL mode: readers never block the writer, and
 * both processes may write; writes wait up to 5 s for each other). It holds no key material: grants,
 * the registry of master keys this proxy created (store, org, KEK reference), and the audit log.
 */
export const STATE_FILE = 'key-proxy.sqlite';
const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
  org TEXT NOT NULL,
  store TEXT NOT NULL,
  jkt TEXT NOT NULL,
  ops TEXT NOT NULL,
  note TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (org, store, jkt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS master_keys (
  store TEXT PRIMARY KEY,
  org TEXT NOT NULL,
  provider TEXT NOT NULL,
  kek TEXT NOT NULL,
  envelope_sha256 TEXT NOT NULL,
  agent TEXT,
  job TEXT,
  created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY,
  event TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_cursors (
  sink TEXT PRIMARY KEY,
  seq INTEGER NOT NULL
) WITHOUT ROWID;
`;

/** Opens (creating if needed) the state database; the directory is made 0700 and the file 0600. */
export function openStateDatabase(dataDir: string): DatabaseSync {
  prepareDataDir(dataDir);
  const file = path.join(dataDir, STATE_FILE);
  try {
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
  } catch (err) {
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `cannot create ${file}: ${(err as Error).message}`, { cause: err });
  }
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(file, { timeout: 5000 });
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
    const { user_version: version } = db.prepare('PRAGMA user_version').get() as { user_version: number };
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new KeyProxyError(
        KeyProxyErrorCode.ConfigInvalid,
        `${file} was written by a newer arca-key-proxy (schema ${version}); upgrade this one`,
      );
    }
    db.exec(SCHEMA);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  } catch (err) {
    if (err instanceof KeyProxyError) throw err;
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `cannot open the state database ${file}: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function prepareDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const stat = statSync(dataDir);
    if (!stat.isDirectory()) throw new Error('not a directory');
    if ((stat.mode & 0o077) !== 0) chmodSync(dataDir, 0o700);
  } catch (err) {
    throw new KeyProxyError(
      KeyProxyErrorCode.ConfigInvalid,
      `ARCA_KP_DATA_DIR ${dataDir} cannot be used: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** This proxy's ID (random, created with the database): names it in audit events sent to the control plane. */
export function proxyInstanceId(db: DatabaseSync): string {
  db.prepare("INSERT INTO meta (name, value) VALUES ('proxy_id', ?) ON CONFLICT (name) DO NOTHING").run(`kp-${randomBytes(8).toString('hex')}`);
  return (db.prepare("SELECT value FROM meta WHERE name = 'proxy_id'").get() as { value: string }).value;
}

/** Runs fn in an IMMEDIATE transaction (takes the write lock first, so the read-modify-write is atomic). */
export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
