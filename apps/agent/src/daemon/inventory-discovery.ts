import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { POSTGRES_HOST_PATTERN, POSTGRES_NAME_PATTERN, type InventoryResource } from '@arca/contracts';
import type { JsonLog } from './json-log.ts';

/**
 * Inventory discovery (docs/fleet.md §7 "Inventory"): what this agent can protect besides what
 * DIR/inventory.json lists — the databases of the PostgreSQL servers it is told to look at
 * (`--discover-postgres`), and, if asked (`--discover-mounts`), the mount points of its real local
 * filesystems. Discovery is opt-in, runs at most every DISCOVERY_INTERVAL_MS in the background of
 * the heartbeats, and never fails the daemon: a source that cannot be read is warned about once
 * per reason and keeps its last known resources, so a server restart does not make them vanish.
 */

/** `inventoryRequestSchema` accepts at most this many resources. */
export const INVENTORY_MAX_RESOURCES = 1000;
/** Databases and mounts change rarely: looking every heartbeat would cost a connection each time. */
export const DISCOVERY_INTERVAL_MS = 5 * 60_000;
/** psql as a whole (connecting, the query); the connection itself gets PGCONNECT_TIMEOUT=5 unless set. */
export const PSQL_TIMEOUT_MS = 15_000;
/** How long a report waits for a discovery in flight before it sends what it has (heartbeats come first). */
export const REPORT_WAIT_MS = 1000;

/** The databases a backup job can dump: not templates, and open to connections. */
export const LIST_DATABASES_SQL = 'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1';

/**
 * Filesystems whose mount points are reported by `--discover-mounts`: local disk filesystems.
 * Left out on purpose: pseudo filesystems (proc, tmpfs, cgroup, overlay…), network filesystems
 * (backed up where they are served, and every client would report them again), read-only images
 * (squashfs, iso9660: snaps, live media) and vfat/exfat (EFI partitions, removable sticks).
 */
const LOCAL_DISK_FILESYSTEMS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'zfs', 'f2fs', 'jfs', 'reiserfs', 'bcachefs']);

/** A PostgreSQL server to look at; no host and no port means libpq's defaults (PGHOST, PGPORT, else the local Unix socket). */
export interface PostgresTarget {
  host?: string;
  port?: number;
}

/**
 * One `--discover-postgres` value: `local` (or empty), `HOST`, `HOST:PORT`, `:PORT`, `[IPV6]`,
 * `[IPV6]:PORT`, a bare IPv6 address, or an absolute Unix-socket directory (`/run/postgresql`,
 * `/run/postgresql:5433`). Hosts follow the contracts' pattern, so what is discovered fits a
 * postgres resource the control plane accepts. Throws an Error that says what is wrong.
 */
export function parsePostgresTarget(value: string): PostgresTarget {
  const v = value.trim();
  if (v === '' || v === 'local') return {};
  let host = v;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::([^:]*))?$/.exec(v);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
  } else if (v.split(':').length === 2) {
    // one colon: HOST:PORT; more than one: a bare IPv6 address without a port
    [host, port] = v.split(':') as [string, string];
  }
  const what = `"${v.slice(0, 80)}"`;
  if ((host !== '' || bracketed) && !POSTGRES_HOST_PATTERN.test(host)) throw new Error(`${what}: the host must be a host name, an IP address or an absolute Unix-socket directory`);
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) throw new Error(`${what}: the port must be a number from 1 to 65535`);
  return { ...(host !== '' ? { host } : {}), ...(port !== undefined ? { port: Number(port) } : {}) };
}

/** ARCA_AGENT_DISCOVER_POSTGRES: targets separated by commas (`local,db2.internal:5433`); empty means none. */
export function parsePostgresTargets(list: string): PostgresTarget[] {
  return uniqueTargets(
    list
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(parsePostgresTarget),
  );
}

/** Targets without repeats, in the order given (`--discover-postgres local --discover-postgres local` looks once). */
export function uniqueTargets(targets: PostgresTarget[]): PostgresTarget[] {
  const seen = new Map<string, PostgresTarget>();
  for (const t of targets) if (!seen.has(targetLabel(t))) seen.set(targetLabel(t), t);
  return [...seen.values()];
}

/** How a target is named in logs: `local`, `db1:5432`, `[::1]:5432`, `/run/postgresql`. */
export function targetLabel(t: PostgresTarget): string {
  const host = t.host === undefined ? '' : t.host.includes(':') ? `[${t.host}]` : t.host;
  return t.port === undefined ? host || 'local' : `${host}:${t.port}`;
}

export interface ListDatabasesOptions {
  /** the agent's environment: PG* settings and credentials (PGPASSFILE, PGUSER…) and ARCA_PSQL */
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/**
 * The databases on one server, by psql: no shell, `--no-password` (a server that wants a password
 * the environment does not give fails at once instead of prompting), no ~/.psqlrc, NUL-separated
 * rows (a name cannot contain NUL, it may contain a newline). Credentials come only from the
 * environment and are never logged. `unusable` lists names a backup job cannot carry (the
 * contracts' name pattern), which are therefore not reported. Throws an Error whose message is the
 * reason (psql missing, timed out, or psql's own last line of diagnosis).
 */
export async function listPostgresDatabases(target: PostgresTarget, options: ListDatabasesOptions): Promise<{ databases: string[]; unusable: string[] }> {
  const psql = options.env.ARCA_PSQL || 'psql';
  const timeoutMs = options.timeoutMs ?? PSQL_TIMEOUT_MS;
  const args = [
    '--no-password', '--no-psqlrc', '--tuples-only', '--no-align', '--record-separator-zero', '--set=ON_ERROR_STOP=1',
    ...(target.host !== undefined ? [`--host=${target.host}`] : []),
    ...(target.port !== undefined ? [`--port=${target.port}`] : []),
    // a database to connect to: PGDATABASE if the operator set one, else the maintenance database
    // (psql's own default, the role's name, rarely exists for a service user)
    ...(options.env.PGDATABASE ? [] : ['--dbname=postgres']),
    `--command=${LIST_DATABASES_SQL}`,
  ];
  const env = { PGCONNECT_TIMEOUT: '5', PGAPPNAME: 'arca-agent-inventory', ...options.env };
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(psql, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024, encoding: 'utf8', windowsHide: true }, (err, out, stderr) => {
      if (!err) return resolve(out);
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number | null };
      if (e.code === 'ENOENT') return reject(new Error(`${psql} was not found (install the PostgreSQL client tools, or set ARCA_PSQL to psql's path)`));
      if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') return reject(new Error('psql answered with more than 1 MiB of database names'));
      if (e.killed) return reject(new Error(`psql did not answer within ${timeoutMs / 1000} s`));
      // psql's diagnosis and its hint ("Is the server running…?"), joined into one line
      const said = oneLine(stderr);
      reject(new Error(`psql exited with status ${String(e.code)}${said ? `: ${said}` : ''}`));
    });
  });
  const names = stdout.split('\0').filter((n) => n !== '');
  return { databases: names.filter((n) => POSTGRES_NAME_PATTERN.test(n)), unusable: names.filter((n) => !POSTGRES_NAME_PATTERN.test(n)) };
}

/**
 * Mount points of real local filesystems in /proc/self/mountinfo, sorted. A mount counts only if
 * it mounts its filesystem's root (or, on btrfs, the root of its subvolume): bind mounts of a
 * subdirectory or a file — systemd's PrivateTmp and ProtectHome, a container's /etc/hosts — are
 * views of something already reported, not filesystems of their own.
 */
export function localFilesystemMounts(mountinfo: string): string[] {
  const found = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const fields = before.split(' ');
    const [fstype, , superOptions = ''] = after.split(' ');
    if (fields.length < 5 || !fstype || !LOCAL_DISK_FILESYSTEMS.has(fstype)) continue;
    const root = unescapeMountField(fields[3]!);
    const subvolume = fstype === 'btrfs' ? superOptions.split(',').find((o) => o.startsWith('subvol='))?.slice('subvol='.length) : undefined;
    if (root !== '/' && (subvolume === undefined || unescapeMountField(subvolume) !== root)) continue;
    found.add(unescapeMountField(fields[4]!));
  }
  return [...found].sort(compareText);
}

/** The kernel writes space, tab, newline and backslash in mount fields as octal escapes (`\040`). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** A resource in one shape (fixed key order, no undefined keys), so equal resources serialize equally. */
function canonical(r: InventoryResource): InventoryResource {
  if (r.kind === 'path') return { kind: 'path', path: r.path };
  return { kind: 'postgres', database: r.database, ...(r.host !== undefined ? { host: r.host } : {}), ...(r.port !== undefined ? { port: r.port } : {}) };
}

function compareText(a: string, b: string): number {
  // code units, not localeCompare: the same order whatever the machine's locale
  return a < b ? -1 : a > b ? 1 : 0;
}

/** kind, then path; or server (no host first, then host, port) and database. */
function compareResources(a: InventoryResource, b: InventoryResource): number {
  if (a.kind !== b.kind) return compareText(a.kind, b.kind);
  if (a.kind === 'path' && b.kind === 'path') return compareText(a.path, b.path);
  if (a.kind === 'postgres' && b.kind === 'postgres') {
    if (a.host !== b.host) return a.host === undefined ? -1 : b.host === undefined ? 1 : compareText(a.host, b.host);
    if (a.port !== b.port) return (a.port ?? 0) - (b.port ?? 0);
    return compareText(a.database, b.database);
  }
  return 0;
}

/** Resources without duplicates, in one order: the same set always serializes to the same text. */
export function canonicalInventory(resources: InventoryResource[]): InventoryResource[] {
  const byKey = new Map<string, InventoryResource>();
  for (const r of resources) {
    const c = canonical(r);
    byKey.set(JSON.stringify(c), c);
  }
  return [...byKey.values()].sort(compareResources);
}

/**
 * The inventory to report: inventory.json's resources and the discovered ones, deduplicated and
 * sorted, at most `max`. inventory.json is what an operator asked for, so when there are too many
 * it is discovered resources that are left out (`dropped`), the same ones every time.
 */
export function mergeInventory(explicit: InventoryResource[], discovered: InventoryResource[], max = INVENTORY_MAX_RESOURCES): { resources: InventoryResource[]; dropped: number } {
  const chosen = canonicalInventory(explicit).slice(0, max);
  const taken = new Set(chosen.map((r) => JSON.stringify(r)));
  const extra = canonicalInventory(discovered).filter((r) => !taken.has(JSON.stringify(r)));
  const room = max - chosen.length;
  return { resources: canonicalInventory([...chosen, ...extra.slice(0, room)]), dropped: Math.max(0, extra.length - room) };
}

export interface InventoryDiscoveryOptions {
  /** servers to list databases of (none: no PostgreSQL discovery) */
  postgres: PostgresTarget[];
  /** report the mount points of local disk filesystems */
  mounts: boolean;
  log: JsonLog;
  /** default process.env */
  env?: NodeJS.ProcessEnv;
  /** default DISCOVERY_INTERVAL_MS */
  intervalMs?: number;
  /** default PSQL_TIMEOUT_MS */
  psqlTimeoutMs?: number;
  /** default /proc/self/mountinfo */
  mountinfoFile?: string;
  /** tests: the clock that decides when discovery is due */
  now?: () => number;
}

interface Source {
  name: string;
  look: () => Promise<InventoryResource[]>;
}

export class InventoryDiscovery {
  private readonly sources: Source[];
  private readonly log: JsonLog;
  private readonly intervalMs: number;
  private readonly now: () => number;
  /** each source's last successful result: kept while the source fails */
  private readonly lastFound = new Map<string, InventoryResource[]>();
  /** the reason last warned about, per failing source (one warning per reason, not per attempt) */
  private readonly failing = new Map<string, string>();
  /** database names not reported, per server, last warned about */
  private readonly unusableWarned = new Map<string, string>();
  private latest: InventoryResource[] = [];
  private lastStarted: number | undefined;
  private inFlight: Promise<unknown> | undefined;

  constructor(options: InventoryDiscoveryOptions) {
    this.log = options.log;
    this.intervalMs = options.intervalMs ?? DISCOVERY_INTERVAL_MS;
    this.now = options.now ?? Date.now;
    const env = options.env ?? process.env;
    const mountinfoFile = options.mountinfoFile ?? '/proc/self/mountinfo';
    this.sources = [
      ...uniqueTargets(options.postgres).map((target) => ({
        name: `postgres ${targetLabel(target)}`,
        look: () => this.postgresResources(target, env, options.psqlTimeoutMs),
      })),
      ...(options.mounts ? [{ name: 'mounts', look: () => mountResources(mountinfoFile) }] : []),
    ];
  }

  /** Whether there is anything to discover (no options: the inventory is inventory.json alone). */
  get enabled(): boolean {
    return this.sources.length > 0;
  }

  /**
   * The discovered resources, canonical. Starts a discovery when one is due, and waits for one in
   * flight at most `waitMs`: a slow server delays the inventory, never the heartbeats, and what it
   * finds goes out with a later report. Never rejects.
   */
  async resources(waitMs = REPORT_WAIT_MS): Promise<InventoryResource[]> {
    if (!this.enabled) return [];
    if (this.inFlight === undefined && (this.lastStarted === undefined || this.now() - this.lastStarted >= this.intervalMs)) {
      this.lastStarted = this.now();
      this.inFlight = this.refresh().finally(() => (this.inFlight = undefined));
    }
    if (this.inFlight !== undefined && waitMs > 0) {
      const timer = new AbortController();
      await Promise.race([this.inFlight, delay(waitMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
      timer.abort();
    }
    return this.latest;
  }

  /** Look at every source now (at once) and return the result; never rejects. */
  async refresh(): Promise<InventoryResource[]> {
    await Promise.all(
      this.sources.map(async (source) => {
        try {
          this.lastFound.set(source.name, await source.look());
          if (this.failing.delete(source.name)) this.log.info('inventory discovery works again', { source: source.name });
        } catch (err) {
          const why = oneLine(err instanceof Error ? err.message : String(err));
          if (this.failing.get(source.name) === why) return;
          this.failing.set(source.name, why);
          this.log.warn('inventory discovery failed; the other resources are still reported', { source: source.name, why, keeping: this.lastFound.get(source.name)?.length ?? 0 });
        }
      }),
    );
    this.latest = canonicalInventory([...this.lastFound.values()].flat());
    return this.latest;
  }

  private async postgresResources(target: PostgresTarget, env: NodeJS.ProcessEnv, timeoutMs: number | undefined): Promise<InventoryResource[]> {
    const { databases, unusable } = await listPostgresDatabases(target, { env, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
    const server = targetLabel(target);
    const key = JSON.stringify(unusable);
    if ((this.unusableWarned.get(server) ?? '[]') !== key) {
      this.unusableWarned.set(server, key);
      if (unusable.length > 0) {
        this.log.warn('databases whose names a backup job cannot carry are not reported (letters, digits, _, $ and - only, at most 63)', { source: `postgres ${server}`, databases: unusable.slice(0, 20).map(oneLine), count: unusable.length });
      }
    }
    return databases.map((database) => ({ kind: 'postgres' as const, database, ...target }));
  }
}

async function mountResources(mountinfoFile: string): Promise<InventoryResource[]> {
  let text: string;
  try {
    text = await readFile(mountinfoFile, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${mountinfoFile} (${(err as NodeJS.ErrnoException).code ?? 'error'}; mount discovery works on Linux only)`, { cause: err });
  }
  return localFilesystemMounts(text).map((path) => ({ kind: 'path' as const, path }));
}

/** For a log field: control characters out, at most 300 characters. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim().slice(0, 300);
}
