import { nextSlot, slotsBetween } from './cron-schedule.ts';

/** What the scheduler needs of a due policy. */
export interface DuePolicy {
  id: string;
  schedule: string;
  timezone: string;
  /** the first slot not yet run */
  nextRunAt: Date;
}

export interface SlotPlan {
  /** the slot the jobs are created for: the first missed one (unique per policy, resource and slot) */
  scheduledFor: Date;
  /** slots in (scheduledFor, now] folded into this run (control plane down, ticks late) */
  coalescedSlots: number;
  /** resources that get a backup job */
  enqueue: string[];
  /** resources whose previous backup is still queued, leased or running: the slot is skipped */
  skip: Array<{ resourceId: string; activeJobId: string }>;
  /** the policy's next slot after now */
  nextRunAt: Date;
}

/** counting coalesced slots is informational: bounded so a minutely policy down for a year stays cheap */
const MAX_COUNTED_SLOTS = 10_000;

/**
 * One scheduler pass over one due policy (docs/fleet.md §5): missed runs coalesce into one run at
 * most per resource, a resource with an active backup is skipped (backups of one resource never
 * overlap), and the next run is the first slot after now, whatever was missed.
 */
export function planSlot(policy: DuePolicy, now: Date, resourceIds: readonly string[], activeBackups: ReadonlyMap<string, string>): SlotPlan {
  const scheduledFor = policy.nextRunAt;
  const enqueue: string[] = [];
  const skip: SlotPlan['skip'] = [];
  for (const resourceId of resourceIds) {
    const activeJobId = activeBackups.get(resourceId);
    if (activeJobId == null) enqueue.push(resourceId);
    else skip.push({ resourceId, activeJobId });
  }
  return {
    scheduledFor,
    coalescedSlots: slotsBetween(policy.schedule, policy.timezone, scheduledFor, now, MAX_COUNTED_SLOTS).length,
    enqueue,
    skip,
    nextRunAt: nextSlot(policy.schedule, policy.timezone, now),
  };
}

export interface FollowUpPolicy {
  copyStoreId: string | null;
  retention: Record<string, number> | null;
  restoreTestEveryDays: number | null;
}

export type FollowUpKind = 'replicate' | 'forget' | 'restore-test';

/**
 * The jobs a successful backup triggers (docs/fleet.md §5): replicate to the copy store, forget by
 * retention, and a restore test when the last successful one is older than the policy's interval
 * (or there has been none).
 */
export function followUpKinds(policy: FollowUpPolicy, lastRestoreTestAt: Date | null, now: Date): FollowUpKind[] {
  const kinds: FollowUpKind[] = [];
  if (policy.copyStoreId != null) kinds.push('replicate');
  if (policy.retention != null && Object.keys(policy.retention).length > 0) kinds.push('forget');
  if (policy.restoreTestEveryDays != null) {
    const due = lastRestoreTestAt == null || now.getTime() - lastRestoreTestAt.getTime() >= policy.restoreTestEveryDays * 86_400_000;
    if (due) kinds.push('restore-test');
  }
  return kinds;
}
