import { z } from 'zod';
import { scheduleProblems } from '../scheduler/cron-schedule.ts';
import { selectorSchema } from './label-selector.ts';
import { retentionSchema } from './retention.ts';

/** Input rules of policies; each problem names its field and says what would be accepted. */
const uuid = z.uuid('must be an ID');
const name = z.string().trim().min(1).max(200);
const rpoMinutes = z.number().int().min(1, 'at least 1 minute').max(525_600, 'at most a year (525600 minutes)');
const restoreTestEveryDays = z.number().int().min(1, 'at least every day').max(366, 'at most every 366 days');
const priority = z.number().int().min(0).max(1_000_000);

export const CLEARABLE = ['retention', 'copyStoreId', 'restoreTestEveryDays'] as const;

export const createPolicySchema = z.object({
  name,
  schedule: z.string().trim().min(1).max(200),
  timezone: z.string().trim().default('UTC'),
  rpoMinutes,
  retention: retentionSchema.optional(),
  storeId: uuid,
  copyStoreId: uuid.optional(),
  restoreTestEveryDays: restoreTestEveryDays.optional(),
  selector: selectorSchema.default({}),
  priority: priority.default(100),
  enabled: z.boolean().default(true),
}).superRefine((v, ctx) => {
  for (const p of scheduleProblems(v.schedule, v.timezone)) ctx.addIssue({ code: 'custom', path: [p.path], message: p.message });
  if (v.copyStoreId != null && v.copyStoreId === v.storeId) ctx.addIssue({ code: 'custom', path: ['copyStoreId'], message: 'the copy store must be another store than the primary one (a copy in the same store is no copy)' });
});

export const updatePolicySchema = z.object({
  id: uuid,
  name: name.optional(),
  schedule: z.string().trim().min(1).max(200).optional(),
  timezone: z.string().trim().optional(),
  rpoMinutes: rpoMinutes.optional(),
  retention: retentionSchema.optional(),
  storeId: uuid.optional(),
  copyStoreId: uuid.optional(),
  restoreTestEveryDays: restoreTestEveryDays.optional(),
  selector: selectorSchema.optional(),
  priority: priority.optional(),
  enabled: z.boolean().optional(),
  clear: z.array(z.enum(CLEARABLE, `clear takes ${CLEARABLE.join(', ')}`)).max(3).default([]),
}).superRefine((v, ctx) => {
  for (const field of v.clear) {
    if (v[field] != null) ctx.addIssue({ code: 'custom', path: ['clear'], message: `${field} is both set and cleared: do one` });
  }
});

/** The checks of a policy as it will be stored (after merging an update). */
export function mergedPolicyProblems(p: { schedule: string; timezone: string; storeId: string; copyStoreId: string | null }): Array<{ path: string; message: string }> {
  const problems: Array<{ path: string; message: string }> = scheduleProblems(p.schedule, p.timezone);
  if (p.copyStoreId != null && p.copyStoreId === p.storeId) problems.push({ path: 'copyStoreId', message: 'the copy store must be another store than the primary one (a copy in the same store is no copy)' });
  return problems;
}
