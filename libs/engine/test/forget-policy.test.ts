import { afterEach, describe, expect, it } from 'vitest';
import { ArcaErrorCode } from '../src/errors/arca-error.ts';
import { applyRetention, forget, groupSnapshots, isoWeek, type RetentionPolicy } from '../src/retention/forget-policy.ts';
import type { SnapshotRecord } from '../src/snapshot/snapshot.ts';
import { listSnapshots } from '../src/snapshot/snapshot-io.ts';
import { initStore, objectNames, random, snap, TempDirs, writeFiles } from './maintenance-fixture.ts';

let seq = 0;
/** A snapshot record at a local date and time (so calendar buckets do not depend on the test machine's zone). */
function rec(y: number, m: number, d: number, h = 12, min = 0, extra: { hostname?: string; paths?: string[]; tags?: string[] } = {}): SnapshotRecord {
  const id = (++seq).toString(16).padStart(64, '0');
  return {
    id,
    snapshot: {
      version: 1,
      time: new Date(y, m - 1, d, h, min).toISOString(),
      tree: '0'.repeat(64),
      paths: extra.paths ?? ['/data'],
      hostname: extra.hostname ?? 'host',
      username: 'me',
      tags: extra.tags ?? [],
      programVersion: 'test',
    },
  };
}

/** Local calendar date of a record, `YYYY-MM-DD` (or with `HH:MM`). */
function day(r: SnapshotRecord, withTime = false): string {
  const t = new Date(r.snapshot.time);
  const p = (n: number) => String(n).padStart(2, '0');
  const date = `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())}`;
  return withTime ? `${date} ${p(t.getHours())}:${p(t.getMinutes())}` : date;
}

function kept(list: SnapshotRecord[], policy: RetentionPolicy, withTime = false): string[] {
  return applyRetention(list, policy).keep.map((k) => day(k.record, withTime));
}

function daily(fromY: number, fromM: number, fromD: number, days: number): SnapshotRecord[] {
  return Array.from({ length: days }, (_, i) => rec(fromY, fromM, fromD + i)); // Date normalizes day overflow
}

describe('applyRetention', () => {
  it('daily snapshots over 400 days: keep-daily 7, weekly 4, monthly 12, yearly 2', () => {
    const list = daily(2023, 1, 1, 400); // 2023-01-01 .. 2024-02-04
    expect(day(list.at(-1)!)).toBe('2024-02-04');
    const decision = applyRetention(list, { keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 2 });
    expect(decision.keep.map((k) => day(k.record))).toEqual([
      // daily: the last 7 days
      '2024-02-04',
      '2024-02-03',
      '2024-02-02',
      '2024-02-01',
      '2024-01-31',
      '2024-01-30',
      '2024-01-29',
      // weekly: Sundays ending the ISO weeks before (the week of 02-04 is already kept by 02-04)
      '2024-01-28',
      '2024-01-21',
      '2024-01-14',
      // monthly: month ends back to March 2023 (Feb 2024 = 02-04, Jan 2024 = 01-31)
      '2023-12-31',
      '2023-11-30',
      '2023-10-31',
      '2023-09-30',
      '2023-08-31',
      '2023-07-31',
      '2023-06-30',
      '2023-05-31',
      '2023-04-30',
      '2023-03-31',
    ]);
    expect(decision.remove).toHaveLength(400 - 20);
    const reasons = new Map(decision.keep.map((k) => [day(k.record), k.reasons]));
    expect(reasons.get('2024-02-04')).toEqual(['daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot']);
    expect(reasons.get('2024-01-31')).toEqual(['daily snapshot', 'monthly snapshot']);
    expect(reasons.get('2024-01-28')).toEqual(['weekly snapshot']);
    expect(reasons.get('2023-12-31')).toEqual(['monthly snapshot', 'yearly snapshot']);
    // input order does not matter
    const shuffled = [...list.slice(200), ...list.slice(0, 200).reverse()];
    expect(applyRetention(shuffled, { keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 2 }).keep.map((k) => k.record.id)).toEqual(
      decision.keep.map((k) => k.record.id),
    );
  });

  it('keeps the newest snapshot of each bucket, several per day', () => {
    const list = [rec(2024, 3, 1, 9), rec(2024, 3, 1, 18), rec(2024, 3, 2, 8), rec(2024, 3, 2, 20), rec(2024, 3, 3, 7)];
    expect(kept(list, { keepDaily: 2 }, true)).toEqual(['2024-03-03 07:00', '2024-03-02 20:00']);
    expect(kept(list, { keepLast: 3 }, true)).toEqual(['2024-03-03 07:00', '2024-03-02 20:00', '2024-03-02 08:00']);
    // -1 = unlimited: one per day, every day; and, as in restic, the oldest snapshot (a rule with
    // counts left always keeps it)
    expect(kept(list, { keepDaily: -1 }, true)).toEqual(['2024-03-03 07:00', '2024-03-02 20:00', '2024-03-01 18:00', '2024-03-01 09:00']);
    expect(kept(list.slice(1), { keepDaily: -1 }, true)).toEqual(['2024-03-03 07:00', '2024-03-02 20:00', '2024-03-01 18:00']);
  });

  it('hourly buckets', () => {
    const list = [rec(2024, 5, 1, 10, 5), rec(2024, 5, 1, 10, 40), rec(2024, 5, 1, 11, 10), rec(2024, 5, 1, 11, 50), rec(2024, 5, 1, 12, 30)];
    expect(kept(list, { keepHourly: 2 }, true)).toEqual(['2024-05-01 12:30', '2024-05-01 11:50']);
    expect(kept(list, { keepHourly: 5 }, true)).toEqual(['2024-05-01 12:30', '2024-05-01 11:50', '2024-05-01 10:40', '2024-05-01 10:05']);
  });

  it('a rule with counts left also keeps the oldest snapshot (restic)', () => {
    const list = [rec(2024, 2, 5), rec(2024, 2, 10)];
    const d = applyRetention(list, { keepMonthly: 6 });
    expect(d.keep.map((k) => [day(k.record), k.reasons])).toEqual([
      ['2024-02-10', ['monthly snapshot']],
      ['2024-02-05', ['oldest monthly snapshot']],
    ]);
    expect(d.remove).toEqual([]);
    // no counts left: the oldest goes
    expect(kept([rec(2024, 2, 5), rec(2024, 2, 10), rec(2024, 3, 1)], { keepMonthly: 2 })).toEqual(['2024-03-01', '2024-02-10']);
  });

  it('keepWithin is measured from the newest snapshot, not from now', () => {
    const list = [rec(2020, 1, 1), rec(2020, 1, 9), rec(2020, 1, 10), rec(2020, 1, 11)];
    const d = applyRetention(list, { keepWithin: 36 * 3600_000 }, new Date(2030, 0, 1));
    expect(d.keep.map((k) => day(k.record))).toEqual(['2020-01-11', '2020-01-10']);
    expect(d.keep[0]!.reasons).toEqual(['within 1d12h']);
  });

  it('keepTags keeps snapshots having all tags of one list, without counting', () => {
    const list = [
      rec(2024, 1, 1, 12, 0, { tags: ['a'] }),
      rec(2024, 1, 2, 12, 0, { tags: ['a', 'b'] }),
      rec(2024, 1, 3, 12, 0, { tags: ['c', 'x'] }),
      rec(2024, 1, 4, 12, 0, { tags: ['b'] }),
      rec(2024, 1, 5),
    ];
    const d = applyRetention(list, { keepTags: ['a,b', 'c'], keepLast: 1 });
    expect(d.keep.map((k) => [day(k.record), k.reasons])).toEqual([
      ['2024-01-05', ['last snapshot']],
      ['2024-01-03', ['has tags c']],
      ['2024-01-02', ['has tags a,b']],
    ]);
    expect(d.remove.map((r) => day(r))).toEqual(['2024-01-04', '2024-01-01']);
  });

  it('applies the policy per host and set of paths', () => {
    const list = [
      rec(2024, 1, 1, 12, 0, { hostname: 'a' }),
      rec(2024, 1, 2, 12, 0, { hostname: 'a' }),
      rec(2024, 1, 1, 13, 0, { hostname: 'b' }),
      rec(2024, 1, 3, 12, 0, { hostname: 'a', paths: ['/x', '/data'] }),
      rec(2024, 1, 4, 12, 0, { hostname: 'a', paths: ['/data', '/x'] }),
    ];
    const groups = groupSnapshots(list);
    expect(groups.map((g) => [g.hostname, g.paths, g.snapshots.length])).toEqual([
      ['a', ['/data'], 2],
      ['b', ['/data'], 1],
      ['a', ['/data', '/x'], 2],
    ]);
    expect(groups[0]!.snapshots.map((s) => day(s))).toEqual(['2024-01-02', '2024-01-01']);
    const d = applyRetention(list, { keepLast: 1 });
    expect(d.keep.map((k) => [k.record.snapshot.hostname, day(k.record)])).toEqual([
      ['a', '2024-01-04'],
      ['a', '2024-01-02'],
      ['b', '2024-01-01'],
    ]);
    expect(d.remove.map((r) => day(r))).toEqual(['2024-01-03', '2024-01-01']);
  });

  it('refuses an empty or invalid policy', () => {
    const list = [rec(2024, 1, 1)];
    for (const policy of [{}, { keepDaily: 0 }, { keepTags: [] }, { keepTags: [' '] }, { keepWithin: 0 }] as RetentionPolicy[]) {
      expect(() => applyRetention(list, policy)).toThrow(expect.objectContaining({ code: ArcaErrorCode.InvalidArgument }));
    }
    expect(() => applyRetention(list, { keepDaily: 1.5 })).toThrow(expect.objectContaining({ code: ArcaErrorCode.InvalidArgument }));
    expect(() => applyRetention(list, { keepWeekly: -2 })).toThrow(expect.objectContaining({ code: ArcaErrorCode.InvalidArgument }));
    expect(() => applyRetention(list, { keepWithin: -1 })).toThrow(expect.objectContaining({ code: ArcaErrorCode.InvalidArgument }));
  });

  it('computes ISO weeks across year boundaries', () => {
    expect(isoWeek(new Date(2021, 0, 3))).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(new Date(2021, 0, 4))).toEqual({ year: 2021, week: 1 });
    expect(isoWeek(new Date(2024, 11, 30))).toEqual({ year: 2025, week: 1 });
    expect(isoWeek(new Date(2023, 0, 1))).toEqual({ year: 2022, week: 52 });
    expect(isoWeek(new Date(2024, 1, 4))).toEqual({ year: 2024, week: 5 });
  });
});

describe('forget', () => {
  const dirs = new TempDirs();
  afterEach(() => dirs.cleanup());

  it('deletes the snapshots the policy does not keep; a dry run deletes nothing', async () => {
    const storeDir = await dirs.make('arca-forget-store-');
    const src = await dirs.make('arca-forget-src-');
    const store = await initStore(storeDir);
    await writeFiles(src, { 'a.bin': random(10_000) });
    const s1 = await snap(store, src);
    await writeFiles(src, { 'b.bin': random(10_000) });
    const s2 = await snap(store, src, ['keep-me']);
    await writeFiles(src, { 'c.bin': random(10_000) });
    const s3 = await snap(store, src);

    await expect(forget(store, {})).rejects.toMatchObject({ code: ArcaErrorCode.InvalidArgument });
    const dry = await forget(store, { keepLast: 1 }, { dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.keep.map((k) => k.record.id)).toEqual([s3.id]);
    expect(dry.remove.map((r) => r.id)).toEqual([s2.id, s1.id]);
    expect((await listSnapshots(store)).map((s) => s.id)).toEqual([s1.id, s2.id, s3.id]);

    // another host's snapshots are untouched by a host filter
    expect(await forget(store, { keepLast: 1 }, { hostname: 'elsewhere' })).toEqual({ keep: [], remove: [], dryRun: false });

    const r = await forget(store, { keepLast: 1, keepTags: ['keep-me'] });
    expect(r.keep.map((k) => k.record.id)).toEqual([s3.id, s2.id]);
    expect(r.remove.map((x) => x.id)).toEqual([s1.id]);
    expect((await listSnapshots(store)).map((s) => s.id)).toEqual([s2.id, s3.id]);
    expect(await objectNames(storeDir, 'locks')).toEqual([]);
  });
});
