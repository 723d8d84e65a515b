import { z } from 'zod';

/**
 * A policy's retention, the counts `arca forget` takes (restic semantics, libs/engine
 * retention/forget-policy.ts): N keeps the newest snapshot of each of the N latest buckets, 0 or
 * absent disables the rule. The control plane cannot import the engine (it
 * holds no data-plane code, eslint scope rules), so the same checks are restated here, and the
 * agent validates again with the engine's `validatePolicy` before forgetting anything.
 */
export const RETENTION_KEYS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
export type RetentionKey = (typeof RETENTION_KEYS)[number];
export type Retention = Partial<Record<RetentionKey, number>>;

// -1 (unlimited, which the engine knows) is not part of the agent wire format (libs/contracts)
const count = z.number().int('must be a whole number').min(0, 'must be 0 (off) or a positive count').max(100_000);

export const retentionSchema = z.strictObject(Object.fromEntries(RETENTION_KEYS.map((k) => [k, count.optional()])) as Record<RetentionKey, z.ZodOptional<typeof count>>)
  .transform((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v != null && v !== 0)) as Retention)
  .refine((r) => Object.keys(r).length > 0, 'retention keeps nothing: set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly or keepYearly (or leave retention out to keep every snapshot)');
