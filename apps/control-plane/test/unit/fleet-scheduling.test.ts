import { describe, expect, it } from 'vitest';
import { effectivePolicy, type PolicyCandidate } from '../../src/policies/effective-policy.ts';
import { effectiveLabels, labelsFromPairs, labelsSchema, selectorMatches, selectorSchema } from '../../src/policies/label-selector.ts';
import { retentionSchema } from '../../src/policies/retention.ts';
import { nextSlot, scheduleProblems, slotsBetween } from '../../src/scheduler/cron-schedule.ts';
import { followUpKinds, planSlot } from '../../src/scheduler/slot-planning.ts';

const iso = (d: Date): string => d.toISOString();
const slots = (schedule: string, tz: string, after: string, n: number): string[] => {
  const out: string[] = [];
  let cursor = new Date(after);
  for (let i = 0; i < n; i++) {
    cursor = nextSlot(schedule, tz, cursor);
    out.push(iso(cursor));
  }
  return out;
};

describe('cron slots in time zones', () => {
  it('computes slots in the policy\'s zone, strictly after the given time', () => {
    expect(slots('0 2 * * *', 'Europe/Berlin', '2026-01-10T00:00:00Z', 2)).toEqual(['2026-01-10T01:00:00.000Z', '2026-01-11T01:00:00.000Z']);
    expect(slots('0 2 * * *', 'America/New_York', '2026-01-10T00:00:00Z', 1)).toEqual(['2026-01-10T07:00:00.000Z']);
    expect(iso(nextSlot('0 2 * * *', 'UTC', new Date('2026-01-10T02:00:00Z')))).toBe('2026-01-11T02:00:00.000Z');
  });

  it('a slot inside a spring-forward gap runs at the next valid time, once', () => {
    // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z); 02:30 does not exist
    expect(slots('30 2 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', 2)).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
    // 02:00 and 02:30 fold into 03:00, which is a slot of its own too: one run
    expect(slots('*/30 * * * *', 'Europe/Berlin', '2026-03-29T00:10:00Z', 3)).toEqual(['2026-03-29T00:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T01:30:00.000Z']);
    // New York 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z)
    expect(slots('15 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 2)).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:15:00.000Z']);
  });

  it('a repeated wall-clock hour runs once; hourly schedules keep every real hour', () => {
    // Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:30 happens twice
    expect(slots('30 2 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', 2)).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
    expect(slots('0 * * * *', 'Europe/Berlin', '2026-10-24T23:30:00Z', 3)).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T02:00:00.000Z']);
  });

  it('reports bad expressions and unknown zones with what to write instead', () => {
    expect(scheduleProblems('0 2 * * *', 'Europe/Berlin')).toEqual([]);
    expect(scheduleProblems('61 2 * * *', 'UTC').map((p) => p.path)).toEqual(['schedule']);
    expect(scheduleProblems('0 0 2 * * *', 'UTC')[0]!.message).toMatch(/5-field cron expression/);
    expect(scheduleProblems('@daily', 'UTC').map((p) => p.path)).toEqual(['schedule']);
    expect(scheduleProblems('0 2 * * *', 'Mars/Olympus_Mons')).toEqual([{ path: 'timezone', message: expect.stringMatching(/not an IANA time zone/) }]);
    expect(scheduleProblems('0 2 * * *', '')[0]!.path).toBe('timezone');
  });

  it('lists the slots of a window', () => {
    expect(slotsBetween('0 * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T05:00:00Z'), 100).map(iso)).toEqual([
      '2026-01-01T01:00:00.000Z', '2026-01-01T02:00:00.000Z', '2026-01-01T03:00:00.000Z', '2026-01-01T04:00:00.000Z', '2026-01-01T05:00:00.000Z',
    ]);
    expect(slotsBetween('* * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2027-01-01T00:00:00Z'), 7)).toHaveLength(7);
  });
});

describe('labels and selectors', () => {
  it('every selector key must match one of its values; an empty selector matches all', () => {
    const labels = { environment: 'prod', perimeter: 'eu', team: 'db' };
    expect(selectorMatches({ environment: ['prod', 'staging'] }, labels)).toBe(true);
    expect(selectorMatches({ environment: ['prod'], perimeter: ['us'] }, labels)).toBe(false);
    expect(selectorMatches({ tier: ['gold'] }, labels)).toBe(false);
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ constructor: ['x'] }, {})).toBe(false);
  });

  it('effective labels are the agent\'s overlaid by the resource\'s', () => {
    expect(effectiveLabels({ environment: 'prod', site: 'fra' }, { environment: 'staging', app: 'crm' })).toEqual({ environment: 'staging', site: 'fra', app: 'crm' });
  });

  it('validates keys and values and refuses a key given twice', () => {
    expect(labelsSchema.safeParse({ environment: 'prod', 'app.kubernetes.io/name': 'crm' }).success).toBe(true);
    expect(labelsSchema.safeParse({ Environment: 'prod' }).success).toBe(false);
    expect(labelsSchema.safeParse({ environment: 'has space' }).success).toBe(false);
    expect(selectorSchema.safeParse({ environment: [] }).success).toBe(false);
    expect(() => labelsFromPairs([{ key: 'a', value: '1' }, { key: 'a', value: '2' }])).toThrow(/given twice/);
  });
});

describe('effective policy', () => {
  const policy = (id: string, priority: number, selector: Record<string, string[]>, created: string, enabled = true): PolicyCandidate =>
    ({ id, priority, selector, enabled, createdAt: new Date(created) });

  it('lowest priority number wins, then the oldest; disabled and non-matching ones never', () => {
    const catchAll = policy('c', 100, {}, '2026-01-01T00:00:00Z');
    const prod = policy('p', 10, { environment: ['prod'] }, '2026-02-01T00:00:00Z');
    const prodOlder = policy('q', 10, { environment: ['prod'] }, '2026-01-15T00:00:00Z');
    const disabled = policy('d', 1, {}, '2025-01-01T00:00:00Z', false);
    const all = [catchAll, prod, prodOlder, disabled];
    expect(effectivePolicy(all, { environment: 'prod' })?.id).toBe('q');
    expect(effectivePolicy(all, { environment: 'dev' })?.id).toBe('c');
    expect(effectivePolicy([prod, disabled], { environment: 'dev' })).toBeNull();
    const twin = policy('a', 10, { environment: ['prod'] }, '2026-01-15T00:00:00Z');
    expect(effectivePolicy([prodOlder, twin], { environment: 'prod' })?.id).toBe('a');
  });
});

describe('retention', () => {
  it('keeps the counts, drops zeros, refuses a retention that keeps nothing', () => {
    expect(retentionSchema.parse({ keepDaily: 7, keepWeekly: 0, keepMonthly: 12 })).toEqual({ keepDaily: 7, keepMonthly: 12 });
    const empty = retentionSchema.safeParse({ keepLast: 0 });
    expect(empty.success).toBe(false);
    expect(empty.error!.issues[0]!.message).toMatch(/keeps nothing/);
    expect(retentionSchema.safeParse({ keepDaily: 1.5 }).success).toBe(false);
    expect(retentionSchema.safeParse({ keepDaily: -1 }).success).toBe(false);
    expect(retentionSchema.safeParse({ keepForever: 1 }).success).toBe(false);
  });
});

describe('slot planning', () => {
  const policy = { id: 'p', schedule: '0 * * * *', timezone: 'UTC', nextRunAt: new Date('2026-01-01T01:00:00Z') };

  it('coalesces missed slots into one run and schedules the first slot after now', () => {
    const plan = planSlot(policy, new Date('2026-01-01T05:30:00Z'), ['r1', 'r2'], new Map());
    expect(plan.enqueue).toEqual(['r1', 'r2']);
    expect(iso(plan.scheduledFor)).toBe('2026-01-01T01:00:00.000Z');
    expect(plan.coalescedSlots).toBe(4);
    expect(iso(plan.nextRunAt)).toBe('2026-01-01T06:00:00.000Z');
  });

  it('skips resources whose previous backup is still active', () => {
    const plan = planSlot(policy, new Date('2026-01-01T01:00:05Z'), ['r1', 'r2'], new Map([['r2', 'job-7']]));
    expect(plan.enqueue).toEqual(['r1']);
    expect(plan.skip).toEqual([{ resourceId: 'r2', activeJobId: 'job-7' }]);
    expect(plan.coalescedSlots).toBe(0);
    expect(iso(plan.nextRunAt)).toBe('2026-01-01T02:00:00.000Z');
  });

  it('follow-ups: replicate with a copy store, forget with retention, restore-test when due', () => {
    const now = new Date('2026-01-10T00:00:00Z');
    const full = { copyStoreId: 's2', retention: { keepDaily: 7 }, restoreTestEveryDays: 7 };
    expect(followUpKinds(full, null, now)).toEqual(['replicate', 'forget', 'restore-test']);
    expect(followUpKinds(full, new Date('2026-01-05T00:00:00Z'), now)).toEqual(['replicate', 'forget']);
    expect(followUpKinds(full, new Date('2026-01-03T00:00:00Z'), now)).toEqual(['replicate', 'forget', 'restore-test']);
    expect(followUpKinds({ copyStoreId: null, retention: null, restoreTestEveryDays: null }, null, now)).toEqual([]);
  });
});
