import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import type { SnapshotRecord } from '../snapshot/snapshot.ts';
import { findSnapshots } from '../snapshot/snapshot-io.ts';
import { acquireLock } from '../store/lock-manager.ts';
import type { Store } from '../store/store.ts';

/**
 * Which snapshots to keep, with restic's `forget` semantics. Counts: a positive N keeps the newest
 * snapshot of each of the N most recent calendar buckets that contain a snapshot; -1 means
 * unlimited; 0 or absent disables the rule.
 */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** keep every snapshot newer than (newest snapshot of its group − keepWithin ms) */
  keepWithin?: number;
  /** keep snapshots having all tags of any one entry; an entry may list several tags: `"a,b"` */
  keepTags?: string[];
}

export interface RetentionDecision {
  /** newest first */
  keep: { record: SnapshotRecord; reasons: string[] }[];
  /** newest first */
  remove: SnapshotRecord[];
}

export interface SnapshotGroup {
  hostname: string;
  /** sorted */
  paths: string[];
  /** newest first */
  snapshots: SnapshotRecord[];
}

const COUNT_RULES = [
  ['keepLast', 'last snapshot'],
  ['keepHourly', 'hourly snapshot'],
  ['keepDaily', 'daily snapshot'],
  ['keepWeekly', 'weekly snapshot'],
  ['keepMonthly', 'monthly snapshot'],
  ['keepYearly', 'yearly snapshot'],
] as const;

type Bucketer = (time: Date, nr: number) => number;

// Buckets use the local calendar, like restic (which uses the snapshot time's location).
const BUCKETERS: Record<(typeof COUNT_RULES)[number][0], Bucketer> = {
  keepLast: (_t, nr) => nr,
  keepHourly: (t) => t.getFullYear() * 1_000_000 + (t.getMonth() + 1) * 10_000 + t.getDate() * 100 + t.getHours(),
  keepDaily: (t) => t.getFullYear() * 10_000 + (t.getMonth() + 1) * 100 + t.getDate(),
  keepWeekly: (t) => {
    const { year, week } = isoWeek(t);
    return year * 100 + week;
  },
  keepMonthly: (t) => t.getFullYear() * 100 + t.getMonth() + 1,
  keepYearly: (t) => t.getFullYear(),
};

/** ISO-8601 week-numbering year and week of the local calendar date of `t`. */
export function isoWeek(t: Date): { year: number; week: number } {
  // work on the local calendar date as a UTC midnight: no DST steps in day arithmetic
  const date = new Date(Date.UTC(t.getFullYear(), t.getMonth(), t.getDate()));
  const dayOfWeek = (date.getUTCDay() + 6) % 7; // Monday = 0
  date.setUTCDate(date.getUTCDate() - dayOfWeek + 3); // the Thursday of this week decides the year
  const year = date.getUTCFullYear();
  const jan1 = Date.UTC(year, 0, 1);
  const week = 1 + Math.floor((date.getTime() - jan1) / 86_400_000 / 7);
  return { year, week };
}

function isEmptyPolicy(p: RetentionPolicy): boolean {
  return COUNT_RULES.every(([k]) => !p[k]) && !p.keepWithin && !(p.keepTags && p.keepTags.some((t) => t.trim() !== ''));
}

export function validatePolicy(policy: RetentionPolicy): void {
  for (const [k] of COUNT_RULES) {
    const v = policy[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= -1)) {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `${k} must be a whole number (or -1 for unlimited), got ${String(v)}`);
    }
  }
  if (policy.keepWithin !== undefined && !(Number.isFinite(policy.keepWithin) && policy.keepWithin >= 0)) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `keepWithin must be a non-negative duration, got ${String(policy.keepWithin)}`);
  }
  if (isEmptyPolicy(policy)) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'refusing to forget with an empty policy: it would remove every snapshot', {
      hint: 'give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within, --keep-tag',
    });
  }
}

/** Group by hostname + set of backed-up paths, as `forget` does; groups in first-seen order. */
export function groupSnapshots(snapshots: readonly SnapshotRecord[]): SnapshotGroup[] {
  const groups = new Map<string, SnapshotGroup>();
  for (const s of snapshots) {
    const paths = [...s.snapshot.paths].sort();
    const key = JSON.stringify([s.snapshot.hostname, paths]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { hostname: s.snapshot.hostname, paths, snapshots: [] }));
    g.snapshots.push(s);
  }
  for (const g of groups.values()) g.snapshots.sort(newestFirst);
  return [...groups.values()];
}

function newestFirst(a: SnapshotRecord, b: SnapshotRecord): number {
  return Date.parse(b.snapshot.time) - Date.parse(a.snapshot.time) || a.id.localeCompare(b.id);
}

function parseTagLists(keepTags: string[] | undefined): string[][] {
  return (keepTags ?? []).map((l) => l.split(',').map((t) => t.trim()).filter(Boolean)).filter((l) => l.length > 0);
}

function formatDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  let rest = ms;
  let out = '';
  for (const [size, unit] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out || `${ms}ms`;
}

/**
 * Decide which snapshots to keep. Snapshots are grouped by hostname + paths and the policy is
 * applied to each group on its own (newest first), exactly like restic's `forget`:
 * - each count rule keeps the newest snapshot of each bucket (hour / day / ISO week / month / year,
 *   local time; `keepLast`: every snapshot is its own bucket) until its count is used up;
 * - a rule with counts left also keeps the group's oldest snapshot, so a short history is not cut;
 * - keepWithin is measured from the group's newest snapshot, not from the wall clock: a host that
 *   stopped backing up keeps its last snapshots. `_now` is accepted for API stability only —
 *   retention never depends on the current time;
 * - keepTags keeps matching snapshots without using up any count.
 * An empty policy is refused (INVALID_ARGUMENT) rather than removing everything.
 */
export function applyRetention(snapshots: readonly SnapshotRecord[], policy: RetentionPolicy, _now?: Date): RetentionDecision {
  validatePolicy(policy);
  const tagLists = parseTagLists(policy.keepTags);
  const keep: RetentionDecision['keep'] = [];
  const remove: SnapshotRecord[] = [];
  for (const group of groupSnapshots(snapshots)) {
    const list = group.snapshots;
    const latest = Date.parse(list[0]!.snapshot.time);
    const buckets = COUNT_RULES.map(([k, reason]) => ({ count: policy[k] ?? 0, bucketer: BUCKETERS[k], last: Number.NaN, reason }));
    list.forEach((rec, nr) => {
      const time = new Date(rec.snapshot.time);
      const reasons: string[] = [];
      for (const l of tagLists) if (l.every((t) => rec.snapshot.tags.includes(t))) reasons.push(`has tags ${l.join(',')}`);
      if (policy.keepWithin && time.getTime() > latest - policy.keepWithin) reasons.push(`within ${formatDuration(policy.keepWithin)}`);
      for (const b of buckets) {
        if (b.count === 0) continue;
        const val = b.bucketer(time, nr);
        if (val !== b.last || nr === list.length - 1) {
          reasons.push(val === b.last ? `oldest ${b.reason}` : b.reason);
          b.last = val;
          if (b.count > 0) b.count--;
        }
      }
      if (reasons.length > 0) keep.push({ record: rec, reasons });
      else remove.push(rec);
    });
  }
  keep.sort((a, b) => newestFirst(a.record, b.record));
  remove.sort(newestFirst);
  return { keep, remove };
}

export interface ForgetOptions {
  /** decide and report, delete nothing */
  dryRun?: boolean;
  /** only consider snapshots of this host */
  hostname?: string;
  /** only consider snapshots having all these tags */
  tags?: string[];
}

export interface ForgetResult extends RetentionDecision {
  dryRun: boolean;
}

/**
 * Apply a retention policy: delete the `snapshots/<id>` objects of the snapshots it does not keep.
 * Data stays until `prune`. Takes an exclusive lock (a running backup may be reading a snapshot it
 * uses as parent); a dry run takes a shared one.
 */
export async function forget(store: Store, policy: RetentionPolicy, options: ForgetOptions = {}): Promise<ForgetResult> {
  validatePolicy(policy);
  const dryRun = options.dryRun ?? false;
  const lock = await acquireLock(store, !dryRun, 'forget');
  try {
    const filter: { hostname?: string; tags?: string[] } = {};
    if (options.hostname) filter.hostname = options.hostname;
    if (options.tags) filter.tags = options.tags;
    const decision = applyRetention(await findSnapshots(store, filter), policy);
    if (!dryRun) {
      for (const rec of decision.remove) await store.backend.delete(`snapshots/${rec.id}`);
    }
    return { ...decision, dryRun };
  } finally {
    await lock.release();
  }
}

/**
 * Forget named snapshots (IDs, unique prefixes or `latest`). Every reference is resolved before
 * anything is deleted, so a typo in the third ID removes nothing. Same locking as `forget`.
 */
export async function forgetSnapshots(store: Store, refs: readonly string[], options: { dryRun?: boolean } = {}): Promise<ForgetResult> {
  if (refs.length === 0) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'name at least one snapshot to forget');
  const dryRun = options.dryRun ?? false;
  const lock = await acquireLock(store, !dryRun, 'forget');
  try {
    const byId = new Map<string, SnapshotRecord>();
    for (const ref of refs) {
      const [rec] = await findSnapshots(store, { ref });
      byId.set(rec!.id, rec!);
    }
    const remove = [...byId.values()].sort(newestFirst);
    if (!dryRun) {
      for (const rec of remove) await store.backend.delete(`snapshots/${rec.id}`);
    }
    return { keep: [], remove, dryRun };
  } finally {
    await lock.release();
  }
}
