import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AgentIdentity } from '@arca/crypto';
import {
  parseJobSpec, postgresDumpPath, type JobCompleteRequest, type JobKind, type LeasedJob, type PostgresBackupJobSpec, type PostgresConnection, type Progress, type SnapshotMeta,
} from '@arca/contracts';
import {
  ArcaErrorCode,
  backup,
  backupStream,
  check,
  findSnapshots,
  forget,
  isArcaError,
  prune,
  resolveSnapshot,
  restore,
  spawnCommandSource,
  sync,
  verifyRestore,
  type Snapshot,
} from '@arca/engine';
import { initJobStore, openJobStore, type OpenedStore, type StoreAccessOptions } from './job-store-access.ts';

/**
 * One runner per job kind (docs/fleet.md §3 "Job kinds"), using the engine in-process. A runner
 * returns what the job reports on completion; failures it does not expect are thrown and turned
 * into a failed outcome by runJob.
 *
 * Cancellation: backup and sync stop at their AbortSignal and keep what they stored; the other
 * operations have no stop point of their own, so cancelling closes the job's key providers, which
 * makes their next key request (every blob needs one) fail at once. Either way the store stays
 * consistent: that is what a killed process leaves too.
 */
export interface JobContext {
  job: LeasedJob;
  identity: AgentIdentity;
  /** aborted when the job is cancelled (control plane) or the agent shuts down */
  signal: AbortSignal;
  /** where restore tests put their scratch copies */
  scratchDir: string;
  storeAccess: Omit<StoreAccessOptions, 'identity'>;
  /** the current job tokens (refreshed by the daemon) */
  tokens(): { token: string; copyToken?: string };
  /** the stores opened for this job register here, so token refreshes and cancellation reach them */
  onStoreOpened(store: OpenedStore, which: 'store' | 'copyStore'): void;
  progress(p: Progress): void;
  /**
   * A job log line for the control plane; `local` goes only to this agent's own log (file names:
   * the control plane learns sizes and counts, not names).
   */
  log(level: 'info' | 'warn' | 'error', message: string, local?: Record<string, unknown>): void;
}

export type JobReport = Omit<JobCompleteRequest, 'attempt'>;

type Runner = (ctx: JobContext) => Promise<JobReport>;

async function open(ctx: JobContext, which: 'store' | 'copyStore'): Promise<OpenedStore> {
  const access = which === 'store' ? ctx.job.store : ctx.job.copyStore;
  const tokens = ctx.tokens();
  const token = which === 'store' ? tokens.token : tokens.copyToken;
  if (!access || !token) throw new Error(`the job has no ${which === 'store' ? 'store' : 'copy store'} and token`);
  const opened = await openJobStore(access, token, { ...ctx.storeAccess, identity: ctx.identity });
  ctx.onStoreOpened(opened, which);
  return opened;
}

function snapshotMeta(storeId: string, id: string, snapshot: Snapshot, durationMs: number, fresh?: { newBytes: number; storedBytes: number }): SnapshotMeta {
  const s = snapshot.summary;
  return {
    storeId,
    snapshotId: id,
    time: snapshot.time,
    hostname: snapshot.hostname,
    tags: snapshot.tags,
    ...(snapshot.parent ? { parent: snapshot.parent } : {}),
    totalBytes: s?.bytesTotal ?? 0,
    fileCount: s ? s.filesNew + s.filesChanged + s.filesUnmodified : 0,
    dirCount: s?.dirs ?? 0,
    newBytes: fresh?.newBytes ?? s?.bytesNew ?? 0,
    storedBytes: fresh?.storedBytes ?? s?.bytesStored ?? 0,
    durationMs: Math.round(durationMs),
  };
}

const runners: Record<JobKind, Runner> = {
  init: async (ctx) => {
    parseJobSpec('init', ctx.job.spec);
    const opened = await initJobStore(ctx.job.store, ctx.tokens().token, { ...ctx.storeAccess, identity: ctx.identity });
    ctx.onStoreOpened(opened, 'store');
    return { outcome: 'succeeded', result: { storeId: opened.store.config.id } };
  },

  backup: async (ctx) => {
    const spec = parseJobSpec('backup', ctx.job.spec);
    if (spec.postgres) return backupPostgres(ctx, spec);
    const { store } = await open(ctx, 'store');
    const result = await backup(store, {
      paths: spec.paths,
      excludes: spec.excludes,
      tags: spec.tags,
      signal: ctx.signal,
      onProgress: (p) => ctx.progress({ phase: 'backup', bytesDone: p.bytesDone, filesDone: p.files }),
      onWarning: (w) => ctx.log('warn', 'a path could not be read and was left out (see the agent\'s log)', { path: w.path, reason: w.message }),
    });
    const meta = snapshotMeta(ctx.job.store.storeId, result.id, result.snapshot, result.snapshot.summary?.durationMs ?? 0);
    return {
      outcome: result.warnings.length > 0 ? 'partial' : 'succeeded',
      result: { snapshotId: result.id, skipped: result.warnings.length },
      snapshots: [meta],
    };
  },

  restore: async (ctx) => {
    const spec = parseJobSpec('restore', ctx.job.spec);
    const { store } = await open(ctx, 'store');
    const snap = await resolveSnapshot(store, spec.snapshotId);
    const sub = spec.path && spec.path !== '/' ? spec.path : undefined;
    const result = await restore(store, snap, {
      target: path.resolve(spec.targetPath),
      ...(sub ? { subPath: sub } : {}),
      onProgress: (p) => ctx.progress({ phase: 'restore', bytesDone: p.bytes, filesDone: p.files }),
      onWarning: (w) => ctx.log('warn', 'an entry could not be restored (see the agent\'s log)', { path: w.path, reason: w.message }),
    });
    return { outcome: result.warnings.length > 0 ? 'partial' : 'succeeded', result: { files: result.files, dirs: result.dirs, bytes: result.bytes, warnings: result.warnings.length } };
  },

  check: async (ctx) => {
    const spec = parseJobSpec('check', ctx.job.spec);
    const { store } = await open(ctx, 'store');
    // subsetPercent p: one part of round(100/p), a different part each day, so successive checks cover the store
    const of = spec.subsetPercent !== undefined && spec.subsetPercent < 100 ? Math.max(1, Math.round(100 / spec.subsetPercent)) : 1;
    const day = Math.floor(Date.now() / 86_400_000);
    const result = await check(store, {
      ...(of > 1 ? { readDataSubset: { n: (day % of) + 1, of } } : spec.readData ? { readData: true } : {}),
      onProgress: (p) => ctx.progress({ phase: `check ${p.phase}`, ...(p.total > 0 ? { percent: Math.min(100, (100 * p.done) / p.total) } : {}) }),
    });
    const summary = {
      ok: result.ok,
      errors: result.errors.length,
      damagedBlobs: result.damagedBlobs.length,
      damagedDataBlobs: result.damagedBlobs.filter((d) => d.type === 'data').length,
      damagedTreeBlobs: result.damagedBlobs.filter((d) => d.type === 'tree').length,
      unreferencedPacks: result.unreferencedPacks.length,
      ...result.stats,
    };
    if (result.ok) return { outcome: 'succeeded', result: summary };
    return {
      outcome: 'failed',
      result: summary,
      error: { code: 'CHECK_FAILED', message: `check found ${result.errors.length} errors and ${result.damagedBlobs.length} damaged blobs`, retryable: false },
    };
  },

  replicate: async (ctx) => {
    const spec = parseJobSpec('replicate', ctx.job.spec);
    const source = await open(ctx, 'store');
    const dest = await open(ctx, 'copyStore');
    const result = await sync(source.store, dest.store, {
      ...(spec.snapshotIds.length > 0 ? { snapshots: spec.snapshotIds } : {}),
      signal: ctx.signal,
      onProgress: (p) => ctx.progress({ phase: 'replicate', bytesDone: p.bytesCopied, filesDone: p.snapshotsDone, filesTotal: p.snapshotsTotal }),
    });
    const copyStoreId = ctx.job.copyStore!.storeId;
    return {
      outcome: 'succeeded',
      result: { copied: result.copied.map((c) => ({ source: c.source, copy: c.id })), skipped: result.skipped.length, ...result.stats },
      snapshots: result.copied.map((c) => snapshotMeta(copyStoreId, c.id, c.snapshot, c.durationMs, { newBytes: c.bytesNew, storedBytes: c.bytesNew })),
    };
  },

  forget: async (ctx) => {
    const spec = parseJobSpec('forget', ctx.job.spec);
    const { store } = await open(ctx, 'store');
    const decided = await forget(store, spec.retention, { ...(spec.hostname ? { hostname: spec.hostname } : {}), ...(spec.tags ? { tags: spec.tags } : {}) });
    const removed = decided.remove.map((r) => r.id);
    let pruned: Record<string, unknown> | undefined;
    if (spec.prune) {
      ctx.progress({ phase: 'prune' });
      const p = await prune(store, {});
      pruned = { packsDeleted: p.packsDeleted, packsRepacked: p.packsRepacked, blobsRemoved: p.blobsRemoved, bytesFreed: p.bytesFreed };
    }
    return { outcome: 'succeeded', result: { removed, kept: decided.keep.length, ...(pruned ? { prune: pruned } : {}) } };
  },

  'restore-test': async (ctx) => {
    const spec = parseJobSpec('restore-test', ctx.job.spec);
    const { store } = await open(ctx, 'store');
    // "latest" is this host's latest snapshot: the resource's backups are made on this agent
    const snap =
      spec.snapshotId === 'latest'
        ? (await findSnapshots(store, { ref: 'latest', hostname: os.hostname() }))[0]!
        : await resolveSnapshot(store, spec.snapshotId);
    // the scratch parent lives in the data directory (0700): restored data is readable by no one else
    await mkdir(ctx.scratchDir, { recursive: true, mode: 0o700 });
    const result = await verifyRestore(store, snap, {
      scratchParent: ctx.scratchDir,
      signal: ctx.signal,
      onProgress: (p) => ctx.progress({ phase: `restore-test ${p.phase}`, bytesDone: p.bytes, filesDone: p.files }),
    });
    const report = { snapshotId: snap.id, files: result.files, bytes: result.bytes, mismatches: result.mismatches.slice(0, 1000), mismatchCount: result.mismatches.length };
    if (result.mismatches.length === 0) return { outcome: 'succeeded', result: report };
    return {
      outcome: 'failed',
      result: report,
      error: { code: 'RESTORE_TEST_MISMATCH', message: `${result.mismatches.length} of ${result.files} restored files differ from the snapshot`, retryable: false },
    };
  },
};

/**
 * pg_dump's command line for a postgres backup: the custom format (compressed, restorable table
 * by table), never a password prompt, the connection from the spec and nothing else. Values are
 * passed as `--option=value`, so none can be taken for an option, and the spec's schema keeps the
 * database name from being read as a connection string. Credentials come from the agent's own
 * environment: ~/.pgpass or PGPASSFILE, peer authentication, a service file.
 */
export function pgDumpArgs(conn: PostgresConnection): string[] {
  return [
    '--format=custom', '--no-password',
    ...(conn.host !== undefined ? [`--host=${conn.host}`] : []),
    ...(conn.port !== undefined ? [`--port=${conn.port}`] : []),
    ...(conn.user !== undefined ? [`--username=${conn.user}`] : []),
    `--dbname=${conn.database}`,
  ];
}

/** The pg_dump to run: ARCA_PG_DUMP (a path, e.g. to a newer major version), else `pg_dump` on PATH. */
function pgDumpCommand(): string {
  return process.env.ARCA_PG_DUMP || 'pg_dump';
}

/**
 * A postgres backup: pg_dump's output, through the engine's stream source, as
 * `/postgres/<database>.dump`. A pg_dump that fails (or is cancelled with the job) saves no snapshot.
 */
async function backupPostgres(ctx: JobContext, spec: PostgresBackupJobSpec): Promise<JobReport> {
  const { store } = await open(ctx, 'store');
  const dump = spawnCommandSource(pgDumpCommand(), pgDumpArgs(spec.postgres));
  try {
    const result = await backupStream(store, {
      path: postgresDumpPath(spec.postgres.database),
      stream: dump.stream,
      finished: () => dump.finished(),
      tags: spec.tags,
      signal: ctx.signal,
      onProgress: (p) => ctx.progress({ phase: 'backup postgres', bytesDone: p.bytesDone, filesDone: p.files }),
    });
    // pg_dump's warnings may name tables: they stay in this agent's log
    const said = dump.stderrTail().trim();
    if (said) ctx.log('warn', 'pg_dump wrote warnings on stderr (see the agent\'s log)', { stderr: said });
    const meta = snapshotMeta(ctx.job.store.storeId, result.id, result.snapshot, result.snapshot.summary?.durationMs ?? 0);
    return { outcome: 'succeeded', result: { snapshotId: result.id, skipped: 0, dumpBytes: result.snapshot.summary?.bytesTotal ?? 0 }, snapshots: [meta] };
  } finally {
    dump.kill();
  }
}

/** Errors worth another attempt: the environment, not the job. */
const RETRYABLE_CODES = new Set<string>([ArcaErrorCode.KeyProxyUnavailable, ArcaErrorCode.BackendError, ArcaErrorCode.Locked, ArcaErrorCode.NoSpace]);

/** Run a leased job to its report; never throws. */
export async function runJob(ctx: JobContext): Promise<JobReport> {
  try {
    if (ctx.signal.aborted) return cancelled();
    return await withLockWait(ctx, () => runners[ctx.job.kind](ctx));
  } catch (err) {
    if (ctx.signal.aborted) return cancelled();
    if (isArcaError(err)) {
      return { outcome: 'failed', error: { code: err.code, message: `${err.message}${err.hint ? ` (${err.hint})` : ''}`.slice(0, 4000), retryable: RETRYABLE_CODES.has(err.code) } };
    }
    const name = (err as { name?: unknown } | undefined)?.name;
    if (name === 'ZodError') return { outcome: 'failed', error: { code: 'INVALID_SPEC', message: `the job's spec does not fit its kind ${ctx.job.kind}`, retryable: false } };
    return { outcome: 'failed', error: { code: 'AGENT_ERROR', message: (err instanceof Error ? err.message : String(err)).slice(0, 4000), retryable: true } };
  }
}

/** How long a job waits for another operation's lock on its store before it fails as LOCKED (retryable). */
export const LOCK_WAIT_MS = 10 * 60_000;

/**
 * Jobs of one store often overlap on purpose — a backup's follow-ups (replicate, forget,
 * restore-test) are queued together, and a forget's prune takes the exclusive lock — so a job
 * that finds the store locked waits for the lock, like `restic --retry-lock`, rather than failing:
 * every operation takes its lock before it changes anything, so starting it again is safe.
 */
async function withLockWait(ctx: JobContext, run: () => Promise<JobReport>): Promise<JobReport> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let wait = 500; ; wait = Math.min(wait * 2, 10_000)) {
    try {
      return await run();
    } catch (err) {
      if (!isArcaError(err) || err.code !== ArcaErrorCode.Locked || Date.now() + wait > deadline || ctx.signal.aborted) throw err;
      ctx.log('info', `the store is locked by another operation; waiting ${Math.round(wait / 1000)} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        ctx.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
      });
      if (ctx.signal.aborted) throw err;
    }
  }
}

function cancelled(): JobReport {
  return { outcome: 'cancelled' };
}
