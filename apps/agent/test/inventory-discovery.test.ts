/**
 * Inventory discovery against the real PostgreSQL server (postgres-support.ts) with the real psql:
 * scratch databases with random names (dropped after), a closed port, a psql that does not exist or
 * does not answer, and mountinfo text as the kernel writes it.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InventoryResource } from '@arca/contracts';
import {
  canonicalInventory,
  InventoryDiscovery,
  listPostgresDatabases,
  localFilesystemMounts,
  mergeInventory,
  parsePostgresTarget,
  parsePostgresTargets,
  targetLabel,
} from '../src/daemon/inventory-discovery.ts';
import { JsonLog } from '../src/daemon/json-log.ts';
import { closedPort, PG_ENV, PG_HOST, PG_PORT, PG_USER, psql } from './postgres-support.ts';

interface LogLine {
  level: string;
  msg: string;
  source?: string;
  why?: string;
  keeping?: number;
  databases?: string[];
}

function collectingLog(): { log: JsonLog; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: new JsonLog({ write: (l: string) => lines.push(JSON.parse(l) as LogLine) }, 'debug'), lines };
}

const pg = (database: string): InventoryResource => ({ kind: 'postgres', database, host: PG_HOST, port: PG_PORT });
const names = (resources: InventoryResource[]) => resources.flatMap((r) => (r.kind === 'postgres' ? [r.database] : []));

describe('inventory discovery', () => {
  const suffix = randomBytes(6).toString('hex');
  const dbA = `arca_inv_a_${suffix}`;
  const dbB = `arca_inv_b_${suffix}`;
  /** exists, but takes no connections: nothing a backup could dump */
  const closedDb = `arca_inv_closed_${suffix}`;
  /** a name outside the contracts' pattern (a space): a backup job cannot carry it */
  const oddDb = `arca inv odd ${suffix}`;
  /** created during the interval test */
  const lateDb = `arca_inv_late_${suffix}`;
  const target = { host: PG_HOST, port: PG_PORT };
  const env = (): NodeJS.ProcessEnv => ({ ...PG_ENV, PGUSER: PG_USER });
  let tmp: string;
  let mountinfoFile: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'arca-inv-'));
    // created in reverse order: the result's order must not depend on it
    for (const db of [dbB, dbA, closedDb]) psql('postgres', `CREATE DATABASE ${db}`);
    psql('postgres', `CREATE DATABASE "${oddDb}"`);
    psql('postgres', `ALTER DATABASE ${closedDb} ALLOW_CONNECTIONS false`);
    mountinfoFile = path.join(tmp, 'mountinfo');
    await writeFile(mountinfoFile, MOUNTINFO);
  });

  afterAll(async () => {
    for (const db of [dbA, dbB, closedDb, oddDb, lateDb]) {
      try {
        psql('postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      } catch {
        // best effort
      }
    }
    await rm(tmp, { recursive: true, force: true });
  });

  it('lists the databases a backup can dump: the scratch ones, not templates, not those closed to connections', async () => {
    const { databases, unusable } = await listPostgresDatabases(target, { env: env() });
    expect(databases).toEqual(expect.arrayContaining([dbA, dbB, 'postgres']));
    expect(databases.indexOf(dbA)).toBeLessThan(databases.indexOf(dbB));
    expect(databases).not.toContain('template0');
    expect(databases).not.toContain('template1');
    expect(databases).not.toContain(closedDb);
    expect(databases).not.toContain(oddDb);
    expect(unusable).toContain(oddDb);
  });

  it('discovery reports them as postgres resources of that server, canonical, and warns once about names it cannot report', async () => {
    const { log, lines } = collectingLog();
    const discovery = new InventoryDiscovery({ postgres: [target, { ...target }], mounts: false, log, env: env() });
    expect(discovery.enabled).toBe(true);
    const first = await discovery.refresh();
    expect(first).toEqual(expect.arrayContaining([pg(dbA), pg(dbB), pg('postgres')]));
    expect(names(first)).not.toContain('template1');
    expect(names(first)).not.toContain(closedDb);
    // the target was given twice and is looked at once: no duplicates
    expect(new Set(names(first)).size).toBe(first.length);
    // stable: already in canonical order (reversing and re-sorting changes nothing)
    expect(JSON.stringify(canonicalInventory([...first].reverse()))).toBe(JSON.stringify(first));
    expect(JSON.stringify(first[first.findIndex((r) => names([r])[0] === dbA)])).toBe(JSON.stringify(pg(dbA)));

    const odd = lines.filter((l) => l.level === 'warn' && l.databases?.includes(oddDb));
    expect(odd).toHaveLength(1);
    await discovery.refresh();
    expect(lines.filter((l) => l.level === 'warn' && l.databases?.includes(oddDb))).toHaveLength(1);
  });

  it('merges inventory.json with what was discovered: deduplicated, sorted, the same text whatever the input order', () => {
    const explicit: InventoryResource[] = [
      { kind: 'path', path: '/srv' },
      { kind: 'postgres', port: PG_PORT, host: PG_HOST, database: dbB } as InventoryResource, // keys in another order
      { kind: 'path', path: '/etc' },
      { kind: 'path', path: '/srv' },
      { kind: 'postgres', database: 'orders' },
    ];
    const discovered = [pg(dbB), pg(dbA), { kind: 'path', path: '/' } as InventoryResource, { kind: 'path', path: '/etc' } as InventoryResource];
    const { resources, dropped } = mergeInventory(explicit, discovered);
    expect(dropped).toBe(0);
    expect(resources).toEqual([
      { kind: 'path', path: '/' },
      { kind: 'path', path: '/etc' },
      { kind: 'path', path: '/srv' },
      { kind: 'postgres', database: 'orders' },
      pg(dbA),
      pg(dbB),
    ]);
    const again = mergeInventory([...explicit].reverse(), [...discovered].reverse());
    expect(JSON.stringify(again.resources)).toBe(JSON.stringify(resources));
  });

  it('keeps within the maximum by leaving out discovered resources, never inventory.json\'s, the same ones every time', () => {
    const explicit: InventoryResource[] = [{ kind: 'path', path: '/z' }, { kind: 'path', path: '/a' }];
    const discovered: InventoryResource[] = ['d', 'b', 'c', 'a', 'e'].map((database) => ({ kind: 'postgres', database }));
    const { resources, dropped } = mergeInventory(explicit, discovered, 4);
    expect(dropped).toBe(3);
    expect(resources).toEqual([{ kind: 'path', path: '/a' }, { kind: 'path', path: '/z' }, { kind: 'postgres', database: 'a' }, { kind: 'postgres', database: 'b' }]);
    expect(mergeInventory(explicit, [...discovered].reverse(), 4)).toEqual({ resources, dropped });
    expect(mergeInventory([], discovered, 1000).resources).toHaveLength(5);
  });

  it('a psql that is not installed: one warning with the reason, and the other sources are still reported', async () => {
    const { log, lines } = collectingLog();
    const discovery = new InventoryDiscovery({ postgres: [target], mounts: true, mountinfoFile, log, env: { ...env(), ARCA_PSQL: path.join(tmp, 'no-such-psql') } });
    const found = await discovery.refresh();
    expect(found).toEqual([{ kind: 'path', path: '/' }, { kind: 'path', path: '/data' }, { kind: 'path', path: '/home' }, { kind: 'path', path: '/srv/my files' }]);
    await discovery.refresh();
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ source: `postgres ${targetLabel(target)}`, keeping: 0 });
    expect(warnings[0]!.why).toMatch(/no-such-psql was not found \(install the PostgreSQL client tools, or set ARCA_PSQL/);
  });

  it('a server that is down (a closed port): one warning naming it, the reachable server still reported', async () => {
    const port = await closedPort();
    const { log, lines } = collectingLog();
    const discovery = new InventoryDiscovery({ postgres: [{ host: '127.0.0.1', port }, target], mounts: false, log, env: env() });
    const found = await discovery.refresh();
    expect(found).toEqual(expect.arrayContaining([pg(dbA), pg(dbB)]));
    expect(found.some((r) => r.kind === 'postgres' && r.port === port)).toBe(false);
    await discovery.refresh();
    const warnings = lines.filter((l) => l.level === 'warn' && l.source === `postgres 127.0.0.1:${port}`);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.why).toMatch(/psql exited with status 2: .*Connection refused/);
  });

  it('a source that fails after it worked keeps its last resources (a restart is not a change), and says when it works again', async () => {
    const { log, lines } = collectingLog();
    const psqlEnv = env();
    const discovery = new InventoryDiscovery({ postgres: [target], mounts: false, log, env: psqlEnv });
    const before = await discovery.refresh();
    expect(names(before)).toContain(dbA);
    psqlEnv.ARCA_PSQL = path.join(tmp, 'gone-psql');
    expect(await discovery.refresh()).toEqual(before);
    expect(lines.filter((l) => l.level === 'warn' && l.why !== undefined)).toMatchObject([{ keeping: before.length }]);
    delete psqlEnv.ARCA_PSQL;
    await discovery.refresh();
    expect(lines.filter((l) => l.level === 'info')).toMatchObject([{ msg: 'inventory discovery works again', source: `postgres ${targetLabel(target)}` }]);
  });

  it('looks again only once the interval has passed (not at every report)', async () => {
    const { log } = collectingLog();
    let now = 1_000_000;
    const discovery = new InventoryDiscovery({ postgres: [target], mounts: false, log, env: env(), intervalMs: 300_000, now: () => now });
    const first = await discovery.resources(60_000);
    expect(names(first)).toContain(dbA);
    psql('postgres', `CREATE DATABASE ${lateDb}`);
    now += 299_000;
    expect(names(await discovery.resources(60_000))).not.toContain(lateDb);
    now += 1_000;
    expect(names(await discovery.resources(60_000))).toContain(lateDb);
  });

  it('a psql that does not answer: the report does not wait for it, and it is stopped at its timeout with one warning', async () => {
    const slow = path.join(tmp, 'slow-psql');
    await writeFile(slow, '#!/bin/sh\nexec sleep 30\n');
    await chmod(slow, 0o755);
    const { log, lines } = collectingLog();
    const discovery = new InventoryDiscovery({ postgres: [target], mounts: false, log, env: { ...env(), ARCA_PSQL: slow }, psqlTimeoutMs: 1500 });
    const started = Date.now();
    expect(await discovery.resources(100)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
    await expect.poll(() => lines.filter((l) => l.level === 'warn').length, { timeout: 10_000 }).toBe(1);
    expect(lines.find((l) => l.level === 'warn')!.why).toBe('psql did not answer within 1.5 s');
  });

  it('no discovery options: nothing to discover, nothing run', async () => {
    const { log, lines } = collectingLog();
    const discovery = new InventoryDiscovery({ postgres: [], mounts: false, log, env: { ARCA_PSQL: '/nonexistent' } });
    expect(discovery.enabled).toBe(false);
    expect(await discovery.resources()).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('mount points of local disk filesystems only: no pseudo, network, image or bind mounts; escapes decoded', () => {
    expect(localFilesystemMounts(MOUNTINFO)).toEqual(['/', '/data', '/home', '/srv/my files']);
    expect(localFilesystemMounts('')).toEqual([]);
  });

  it('reads this machine\'s own mount table (sorted, no duplicates, no pseudo filesystems)', async () => {
    const { log } = collectingLog();
    if (process.platform !== 'linux') return;
    const found = await new InventoryDiscovery({ postgres: [], mounts: true, log }).refresh();
    const paths = found.map((r) => (r.kind === 'path' ? r.path : ''));
    expect(paths).toEqual([...new Set(paths)].sort());
    for (const p of ['/proc', '/sys', '/dev', '/dev/shm']) expect(paths).not.toContain(p);
  });

  it('parses --discover-postgres values', () => {
    expect(parsePostgresTarget('')).toEqual({});
    expect(parsePostgresTarget('local')).toEqual({});
    expect(parsePostgresTarget('db1.internal')).toEqual({ host: 'db1.internal' });
    expect(parsePostgresTarget('db1.internal:5433')).toEqual({ host: 'db1.internal', port: 5433 });
    expect(parsePostgresTarget(':5433')).toEqual({ port: 5433 });
    expect(parsePostgresTarget('10.0.0.5:5432')).toEqual({ host: '10.0.0.5', port: 5432 });
    expect(parsePostgresTarget('[::1]:5432')).toEqual({ host: '::1', port: 5432 });
    expect(parsePostgresTarget('[fd00::5]')).toEqual({ host: 'fd00::5' });
    expect(parsePostgresTarget('fd00::5')).toEqual({ host: 'fd00::5' });
    expect(parsePostgresTarget('/run/postgresql')).toEqual({ host: '/run/postgresql' });
    expect(parsePostgresTarget('/run/postgresql:5433')).toEqual({ host: '/run/postgresql', port: 5433 });
    expect(() => parsePostgresTarget('db1:0')).toThrow(/port must be a number from 1 to 65535/);
    expect(() => parsePostgresTarget('db1:99999')).toThrow(/port/);
    expect(() => parsePostgresTarget('db1:')).toThrow(/port/);
    expect(() => parsePostgresTarget('host=evil dbname=x')).toThrow(/host must be/);
    expect(() => parsePostgresTarget('[]:5432')).toThrow(/host must be/);
    expect(parsePostgresTargets(' local, db2:5433 ,,local ')).toEqual([{}, { host: 'db2', port: 5433 }]);
    expect(parsePostgresTargets('')).toEqual([]);
    expect([{}, { host: '::1', port: 5432 }, { host: 'db' }, { port: 5 }].map(targetLabel)).toEqual(['local', '[::1]:5432', 'db', ':5']);
  });
});

/** /proc/self/mountinfo as on a systemd service with PrivateTmp and ProtectHome on a btrfs/ext4 host, in a container-ish mix. */
const MOUNTINFO = [
  '22 27 0:21 / /proc rw,relatime - proc proc rw',
  '23 27 0:22 / /sys rw,relatime - sysfs sysfs rw',
  '24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334076k,mode=755',
  '27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard',
  '28 27 254:0 / / ro,relatime shared:1 - ext4 /dev/vda1 rw,discard', // ProtectSystem's read-only view of /
  '29 27 254:0 /tmp/systemd-private-abc-arca-agent.service-x/tmp /tmp rw,relatime - ext4 /dev/vda1 rw', // PrivateTmp
  '30 27 254:0 /var/lib/docker/containers/1/hosts /etc/hosts rw - ext4 /dev/vda1 rw', // a file bind mount
  '31 27 0:40 /home /home rw,relatime shared:5 - btrfs /dev/vdb rw,space_cache=v2,subvolid=257,subvol=/home', // a btrfs subvolume
  '32 27 0:40 /home/alice/tmp /mnt/scratch rw - btrfs /dev/vdb rw,subvolid=257,subvol=/home', // a bind inside it
  '33 27 0:41 / /data rw - xfs /dev/vdc rw',
  '34 27 0:42 / /srv/my\\040files rw - ext4 /dev/vdd rw',
  '35 27 0:43 / /mnt/nfs rw - nfs4 server:/export rw',
  '36 27 0:44 / /snap/core/1 ro - squashfs /dev/loop0 ro',
  '37 27 0:45 / /boot/efi rw - vfat /dev/vda15 rw',
  '38 27 0:46 / /run rw - tmpfs tmpfs rw',
  '39 27 0:47 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw',
  '',
].join('\n');
