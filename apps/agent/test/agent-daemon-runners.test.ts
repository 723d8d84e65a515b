/**
 * The daemon's job runners against real components: a real `arca-key-proxy serve` (local KEK,
 * JWKS file), real job tokens bound to the agent's key, fs stores, the engine. Each job is run as
 * the daemon runs a leased job (runJob with a JobContext), in the order a store lives through.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAgentIdentity, type AgentIdentity, type JobOperation } from '@arca/crypto';
import { JOB_KIND_TOKEN_OPS, jobCompleteRequestSchema, parseJobSpec, type JobKind, type LeasedJob, type Progress, type StoreAccess } from '@arca/contracts';
import { pgDumpArgs, runJob, type JobContext, type JobReport } from '../src/daemon/job-runners.ts';
import type { OpenedStore } from '../src/daemon/job-store-access.ts';
import { newStoreId, TestKeyProxy, treeHashes } from './key-proxy-support.ts';
import { dropDatabases, ORDERS_ROWS_SQL, ORDERS_TABLE_SQL, PG_CONN, PG_HOST, PG_PORT, PG_USER, psql, runTool } from './postgres-support.ts';

interface Ran {
  report: JobReport;
  progress: Progress[];
  logs: { level: string; message: string; local?: Record<string, unknown> }[];
  opened: { store: OpenedStore; which: string }[];
}

describe('agent daemon job runners (real key proxy, real job tokens, fs stores)', () => {
  let tmp: string;
  let proxy: TestKeyProxy;
  let identity: AgentIdentity;
  let src: string;
  const primary = { id: randomUUID(), storeId: newStoreId(), dir: '' };
  const replica = { id: randomUUID(), storeId: newStoreId(), dir: '' };
  let firstSnapshot: string;
  // postgres backups: scratch databases with random names, dropped after
  const pgSuffix = randomBytes(6).toString('hex');
  const pgSource = `arca_runner_src_${pgSuffix}`;
  const pgRestored = `arca_runner_rst_${pgSuffix}`;
  const pgStore = { id: randomUUID(), storeId: newStoreId(), dir: '' };

  const access = (s: typeof primary): StoreAccess => ({ id: s.id, storeId: s.storeId, url: s.dir, keyProxyUrl: proxy.url, credentials: null });

  /** Run one job as the daemon would: tokens with the ops the control plane gives its kind. */
  async function run(kind: JobKind, spec: Record<string, unknown>, store: typeof primary, options: { copy?: typeof primary; signal?: AbortSignal; ops?: JobOperation[] } = {}): Promise<Ran> {
    const ops = JOB_KIND_TOKEN_OPS[kind];
    const jobId = randomUUID();
    const token = await proxy.token(store.storeId, options.ops ?? (ops.store as readonly JobOperation[]), identity, { job: jobId });
    const copyToken = options.copy && ops.copyStore ? await proxy.token(options.copy.storeId, ops.copyStore as readonly JobOperation[], identity, { job: jobId }) : undefined;
    const job: LeasedJob = {
      id: jobId,
      kind,
      attempt: 1,
      leaseExpiresAt: new Date(Date.now() + 60_000).toISOString(),
      leaseSeconds: 60,
      spec,
      store: access(store),
      ...(options.copy ? { copyStore: access(options.copy) } : {}),
      token,
      ...(copyToken ? { copyToken } : {}),
    };
    const ran: Ran = { report: { outcome: 'failed' }, progress: [], logs: [], opened: [] };
    const ctx: JobContext = {
      job,
      identity,
      signal: options.signal ?? new AbortController().signal,
      scratchDir: path.join(tmp, 'agent-data', 'scratch'),
      storeAccess: { allowHttp: true, retryBudgetMs: 2000 },
      tokens: () => ({ token, ...(copyToken ? { copyToken } : {}) }),
      onStoreOpened: (s, which) => ran.opened.push({ store: s, which }),
      progress: (p) => ran.progress.push(p),
      log: (level, message, local) => ran.logs.push({ level, message, ...(local ? { local } : {}) }),
    };
    try {
      ran.report = await runJob(ctx);
    } finally {
      // the daemon closes what the job opened
      for (const o of ran.opened) await o.store.close();
    }
    // every report is a valid completion request
    expect(jobCompleteRequestSchema.safeParse({ attempt: 1, ...ran.report }).success).toBe(true);
    return ran;
  }

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'arca-agent-runners-'));
    proxy = await TestKeyProxy.start(tmp);
    identity = generateAgentIdentity();
    primary.dir = path.join(tmp, 'store-a');
    replica.dir = path.join(tmp, 'store-b');
    pgStore.dir = path.join(tmp, 'store-pg');
    src = path.join(tmp, 'src');
    await mkdir(path.join(src, 'sub/deeper'), { recursive: true });
    await writeFile(path.join(src, 'hello-secret-name.txt'), 'hello, managed world\n');
    await writeFile(path.join(src, 'sub/random.bin'), randomBytes(400_000));
    await writeFile(path.join(src, 'sub/deeper/repeat.txt'), 'the same line again\n'.repeat(20_000));
    await writeFile(path.join(src, 'empty'), '');
  });

  afterAll(async () => {
    dropDatabases(pgSource, pgRestored);
    await proxy?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('init creates the managed store the token names (no key slots, config with an envelope)', async () => {
    const { report } = await run('init', {}, primary);
    expect(report).toEqual({ outcome: 'succeeded', result: { storeId: primary.storeId } });
    const config = JSON.parse(await readFile(path.join(primary.dir, 'config'), 'utf8')) as { id: string; keyCustody: { type: string; url: string } };
    expect(config.id).toBe(primary.storeId);
    expect(config.keyCustody).toMatchObject({ type: 'key-proxy', url: proxy.url });
    expect(await readdir(primary.dir)).not.toContain('keys');

    // a second init of the same store fails for good (it exists), not retried
    const again = await run('init', {}, primary);
    expect(again.report.outcome).toBe('failed');
    expect(again.report.error).toMatchObject({ code: 'STORE_EXISTS', retryable: false });
  });

  it('backup reports SnapshotMeta with sizes and counts, and no file names', async () => {
    const ran = await run('backup', { resourceId: randomUUID(), paths: [src], excludes: [], tags: ['nightly'] }, primary);
    const { report } = ran;
    expect(report.outcome).toBe('succeeded');
    expect(report.snapshots).toHaveLength(1);
    const meta = report.snapshots![0]!;
    firstSnapshot = meta.snapshotId;
    expect(report.result).toEqual({ snapshotId: firstSnapshot, skipped: 0 });
    const sizes = 21 + 400_000 + 20 * 20_000 + 0;
    expect(meta).toMatchObject({ storeId: primary.storeId, hostname: os.hostname(), tags: ['nightly'], totalBytes: sizes, fileCount: 4 });
    expect(meta.dirCount).toBeGreaterThanOrEqual(2);
    expect(meta.newBytes).toBe(sizes);
    expect(meta.storedBytes).toBeGreaterThan(0);
    expect(meta.storedBytes).toBeLessThan(sizes); // the repeated text compresses
    expect(meta.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(meta.durationMs).toBeGreaterThanOrEqual(0);
    expect(ran.progress.at(-1)).toMatchObject({ phase: 'backup' });
    // what goes to the control plane never names a file
    const wire = JSON.stringify(report) + JSON.stringify(ran.progress) + JSON.stringify(ran.logs.map((l) => l.message));
    for (const name of ['hello-secret-name', 'random.bin', 'repeat.txt', 'deeper', src]) expect(wire).not.toContain(name);
  });

  it('a path that cannot be read: partial, the control plane gets the count, only the local log gets the name', async () => {
    if (process.getuid?.() === 0) return; // root reads everything
    const hidden = path.join(src, 'unreadable-secret-name.txt');
    await writeFile(hidden, 'x', { mode: 0o000 });
    try {
      const ran = await run('backup', { resourceId: randomUUID(), paths: [src], excludes: [], tags: [] }, primary);
      expect(ran.report.outcome).toBe('partial');
      expect(ran.report.result).toMatchObject({ skipped: 1 });
      expect(ran.logs.some((l) => l.local?.path === hidden)).toBe(true);
      expect(JSON.stringify(ran.report) + JSON.stringify(ran.logs.map((l) => l.message))).not.toContain('unreadable-secret-name');
    } finally {
      await rm(hidden, { force: true });
    }
  });

  it('restore writes the snapshot byte-identical to the target', async () => {
    const target = path.join(tmp, 'restored');
    const { report } = await run('restore', { snapshotId: firstSnapshot, path: src, targetPath: target }, primary);
    expect(report.outcome).toBe('succeeded');
    expect(report.result).toMatchObject({ files: 4, bytes: 21 + 400_000 + 400_000, warnings: 0 });
    expect(await treeHashes(target)).toEqual(await treeHashes(src));
  });

  it('check (with and without reading the data) succeeds on a sound store', async () => {
    const quick = await run('check', { readData: false }, primary);
    expect(quick.report.outcome).toBe('succeeded');
    expect(quick.report.result).toMatchObject({ ok: true, errors: 0, damagedBlobs: 0 });
    const full = await run('check', { readData: true }, primary);
    expect(full.report.outcome).toBe('succeeded');
    expect(full.report.result).toMatchObject({ ok: true, errors: 0 });
    const subset = await run('check', { readData: false, subsetPercent: 50 }, primary);
    expect(subset.report.outcome).toBe('succeeded');
  });

  it('restore-test of the latest snapshot: every file compared, no mismatches, scratch removed', async () => {
    const ran = await run('restore-test', { snapshotId: 'latest', resourceId: randomUUID() }, primary);
    expect(ran.report.outcome).toBe('succeeded');
    expect(ran.report.result).toMatchObject({ files: 4, bytes: 21 + 400_000 + 400_000, mismatchCount: 0, mismatches: [] });
    // the scratch parent is private and left empty
    const scratch = path.join(tmp, 'agent-data', 'scratch');
    expect((await stat(scratch)).mode & 0o777).toBe(0o700);
    expect(await readdir(scratch)).toEqual([]);
  });

  it('replicate copies the snapshot into a second managed store', async () => {
    expect((await run('init', {}, replica)).report.outcome).toBe('succeeded');
    const ran = await run('replicate', { snapshotIds: [firstSnapshot] }, primary, { copy: replica });
    expect(ran.report.outcome).toBe('succeeded');
    const copied = ran.report.result!.copied as { source: string; copy: string }[];
    expect(copied).toHaveLength(1);
    expect(copied[0]!.source).toBe(firstSnapshot);
    expect(ran.report.snapshots).toHaveLength(1);
    expect(ran.report.snapshots![0]).toMatchObject({ storeId: replica.storeId, snapshotId: copied[0]!.copy, fileCount: 4, totalBytes: 21 + 400_000 + 400_000 });

    // the copy is there: restored from the replica it is the same data
    const target = path.join(tmp, 'restored-from-replica');
    const r = await run('restore', { snapshotId: copied[0]!.copy, path: src, targetPath: target }, replica);
    expect(r.report.outcome).toBe('succeeded');
    expect(await treeHashes(target)).toEqual(await treeHashes(src));

    // replicating again copies nothing new
    const again = await run('replicate', { snapshotIds: [firstSnapshot] }, primary, { copy: replica });
    expect(again.report.outcome).toBe('succeeded');
    expect(again.report.result).toMatchObject({ copied: [], skipped: 1 });
  });

  it('forget with prune removes all but the last snapshot', async () => {
    await writeFile(path.join(src, 'later.txt'), 'a later file\n');
    const second = await run('backup', { resourceId: randomUUID(), paths: [src], excludes: [], tags: ['nightly'] }, primary);
    expect(second.report.outcome).toBe('succeeded');
    const { report } = await run('forget', { retention: { keepLast: 1 }, prune: true }, primary);
    expect(report.outcome).toBe('succeeded');
    expect(report.result!.removed).toContain(firstSnapshot);
    expect(report.result).toMatchObject({ kept: 1 });
    expect(report.result!.prune).toBeDefined();
    const snapshots = await readdir(path.join(primary.dir, 'snapshots'));
    expect(snapshots).toEqual([second.report.snapshots![0]!.snapshotId]);
    const check = await run('check', { readData: true }, primary);
    expect(check.report.outcome).toBe('succeeded');
  });

  it('a corrupted pack: restore-test and check fail, with a non-retryable error', async () => {
    const packsDir = path.join(replica.dir, 'packs');
    const packs: { file: string; size: number }[] = [];
    for (const e of await readdir(packsDir, { recursive: true, withFileTypes: true })) {
      if (e.isFile()) packs.push({ file: path.join(e.parentPath, e.name), size: (await stat(path.join(e.parentPath, e.name))).size });
    }
    // the largest pack holds file data
    const victim = packs.sort((a, b) => b.size - a.size)[0]!;
    const bytes = await readFile(victim.file);
    for (let i = 100; i < bytes.length - 100; i += 4096) bytes[i] = bytes[i]! ^ 0xff;
    await writeFile(victim.file, bytes);

    const test = await run('restore-test', { snapshotId: 'latest', resourceId: randomUUID() }, replica);
    expect(test.report.outcome).toBe('failed');
    expect(test.report.error?.retryable).toBe(false);
    const mismatchCount = test.report.result?.mismatchCount as number | undefined;
    if (mismatchCount !== undefined) expect(mismatchCount).toBeGreaterThan(0);

    const check = await run('check', { readData: true }, replica);
    expect(check.report.outcome).toBe('failed');
    expect(check.report.error).toMatchObject({ code: 'CHECK_FAILED', retryable: false });
    expect(check.report.result!.damagedBlobs).toBeGreaterThan(0);
  });

  it('a token without the operation the job needs: failed, refused by the key proxy, store unchanged', async () => {
    const before = await readdir(path.join(primary.dir, 'snapshots'));
    const ran = await run('backup', { resourceId: randomUUID(), paths: [src], excludes: [], tags: [] }, primary, { ops: ['restore'] });
    expect(ran.report.outcome).toBe('failed');
    expect(ran.report.error?.retryable).toBe(false);
    expect(await readdir(path.join(primary.dir, 'snapshots'))).toEqual(before);
  });

  it('a store whose ID is not the one the control plane names is refused', async () => {
    const wrong = { ...replica, storeId: primary.storeId };
    const ran = await run('check', { readData: false }, wrong);
    expect(ran.report.outcome).toBe('failed');
    expect(ran.report.error).toMatchObject({ code: 'CONFIG_TAMPERED', retryable: false });
  });

  it('a spec that does not fit its kind fails as INVALID_SPEC; a job cancelled before it starts is cancelled', async () => {
    const bad = await run('restore', { snapshotId: 'nope' }, primary);
    expect(bad.report).toMatchObject({ outcome: 'failed', error: { code: 'INVALID_SPEC', retryable: false } });
    const controller = new AbortController();
    controller.abort();
    const cancelled = await run('check', { readData: false }, primary, { signal: controller.signal });
    expect(cancelled.report).toEqual({ outcome: 'cancelled' });
  });

  it('restore-test of "latest" in a store without snapshots of this host fails clearly, not as an agent crash', async () => {
    const empty = { id: randomUUID(), storeId: newStoreId(), dir: path.join(tmp, 'store-empty') };
    expect((await run('init', {}, empty)).report.outcome).toBe('succeeded');
    const ran = await run('restore-test', { snapshotId: 'latest', resourceId: randomUUID() }, empty);
    expect(ran.report.outcome).toBe('failed');
    expect(ran.report.error?.retryable).toBe(false);
    expect(ran.report.error?.message).toMatch(/no snapshot/i);
  });
  describe('postgres resources', () => {
    const postgres = () => ({ database: pgSource, host: PG_HOST, port: PG_PORT, user: PG_USER });

    it('pg_dump\'s command line: custom format, no password prompt, every value as --option=value', () => {
      expect(pgDumpArgs({ database: 'shop' })).toEqual(['--format=custom', '--no-password', '--dbname=shop']);
      expect(pgDumpArgs({ database: 'shop', host: '/var/run/postgresql', port: 5433, user: 'backup' })).toEqual([
        '--format=custom', '--no-password', '--host=/var/run/postgresql', '--port=5433', '--username=backup', '--dbname=shop',
      ]);
    });

    it('a postgres backup job dumps the database into /postgres/<db>.dump; a restore job puts the dump back; pg_restore gives every row back', async () => {
      psql('postgres', `CREATE DATABASE ${pgSource}`);
      psql('postgres', `CREATE DATABASE ${pgRestored}`);
      psql(pgSource, ORDERS_TABLE_SQL);
      psql(pgSource, 'CREATE TABLE payroll_secret_table (n int)');
      expect((await run('init', {}, pgStore)).report.outcome).toBe('succeeded');

      const resourceId = randomUUID();
      const spec = parseJobSpec('backup', { resourceId, postgres: postgres(), tags: [`resource-${resourceId}`] });
      const ran = await run('backup', spec, pgStore);
      expect(ran.report.outcome).toBe('succeeded');
      const meta = ran.report.snapshots![0]!;
      expect(meta).toMatchObject({ storeId: pgStore.storeId, hostname: os.hostname(), tags: [`resource-${resourceId}`], fileCount: 1, dirCount: 1 });
      expect(meta.totalBytes).toBeGreaterThan(10_000);
      expect(ran.report.result).toEqual({ snapshotId: meta.snapshotId, skipped: 0, dumpBytes: meta.totalBytes });
      expect(ran.progress.at(-1)).toMatchObject({ phase: 'backup postgres' });
      // what goes to the control plane names no table
      const wire = JSON.stringify(ran.report) + JSON.stringify(ran.progress) + JSON.stringify(ran.logs.map((l) => l.message));
      expect(wire).not.toContain('payroll_secret_table');
      expect(wire).not.toContain('orders');

      // the documented restore: the dump file into the target path, then pg_restore
      const target = path.join(tmp, 'restored-pg');
      const restored = await run('restore', { snapshotId: meta.snapshotId, path: `/postgres/${pgSource}.dump`, targetPath: target }, pgStore);
      expect(restored.report).toMatchObject({ outcome: 'succeeded', result: { files: 1, bytes: meta.totalBytes, warnings: 0 } });
      const dumpFile = path.join(target, `${pgSource}.dump`);
      expect((await stat(dumpFile)).mode & 0o777).toBe(0o600);
      expect((await readFile(dumpFile)).subarray(0, 5).toString()).toBe('PGDMP');
      expect(await runTool('pg_restore', [...PG_CONN, '--dbname', pgRestored, '--exit-on-error', dumpFile])).toEqual({ code: 0, stderr: '' });
      expect(psql(pgRestored, ORDERS_ROWS_SQL)).toBe(psql(pgSource, ORDERS_ROWS_SQL));

      // restore tests work unchanged (restore, re-chunk, compare digests)
      const test = await run('restore-test', { snapshotId: meta.snapshotId, resourceId }, pgStore);
      expect(test.report).toMatchObject({ outcome: 'succeeded', result: { files: 1, bytes: meta.totalBytes, mismatchCount: 0 } });
    });

    it('pg_dump failing (no such database): failed with its exit status and message, no snapshot', async () => {
      const before = await readdir(path.join(pgStore.dir, 'snapshots'));
      const ran = await run('backup', { resourceId: randomUUID(), postgres: { ...postgres(), database: `${pgSource}_missing` }, tags: [] }, pgStore);
      expect(ran.report.outcome).toBe('failed');
      expect(ran.report.error).toMatchObject({ code: 'SOURCE_FAILED', retryable: false });
      expect(ran.report.error!.message).toMatch(/command "pg_dump" exited with status 1; no snapshot was saved/);
      expect(ran.report.error!.message).toMatch(/does not exist/);
      expect(ran.report.snapshots).toBeUndefined();
      expect(await readdir(path.join(pgStore.dir, 'snapshots'))).toEqual(before);
    });

    it('a postgres spec with a password, or with paths too, is refused before anything runs', async () => {
      for (const spec of [
        { resourceId: randomUUID(), postgres: { ...postgres(), password: 'secret' }, tags: [] },
        { resourceId: randomUUID(), postgres: postgres(), paths: ['/srv'], excludes: [], tags: [] },
      ]) {
        const ran = await run('backup', spec, pgStore);
        expect(ran.report).toMatchObject({ outcome: 'failed', error: { code: 'INVALID_SPEC', retryable: false } });
      }
    });

    it('cancelling a postgres backup stops pg_dump and saves no snapshot', async () => {
      // a stand-in pg_dump (ARCA_PG_DUMP) that writes a little, records its pid, and then hangs
      const fake = path.join(tmp, 'slow-pg_dump');
      const pidFile = path.join(tmp, 'slow-pg_dump.pid');
      await writeFile(fake, `#!/bin/sh\necho $$ > '${pidFile}'\nhead -c 100000 /dev/zero\nexec sleep 60\n`, { mode: 0o755 });
      const before = await readdir(path.join(pgStore.dir, 'snapshots'));
      const saved = process.env.ARCA_PG_DUMP;
      process.env.ARCA_PG_DUMP = fake;
      const controller = new AbortController();
      try {
        const running = run('backup', { resourceId: randomUUID(), postgres: postgres(), tags: [] }, pgStore, { signal: controller.signal });
        for (let i = 0; i < 200 && !(await stat(pidFile).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 25));
        controller.abort();
        expect((await running).report).toEqual({ outcome: 'cancelled' });
      } finally {
        if (saved === undefined) delete process.env.ARCA_PG_DUMP;
        else process.env.ARCA_PG_DUMP = saved;
      }
      // exec'd into sleep, the same pid: gone once the job ended (SIGTERM)
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      let alive = true;
      for (let i = 0; i < 100 && alive; i++) {
        try {
          process.kill(pid, 0);
          await new Promise((r) => setTimeout(r, 20));
        } catch {
          alive = false;
        }
      }
      expect(alive).toBe(false);
      expect(await readdir(path.join(pgStore.dir, 'snapshots'))).toEqual(before);
    });
  });
});
