import { selectorMatches, type LabelSelector, type Labels } from './label-selector.ts';

export interface PolicyCandidate {
  id: string;
  selector: LabelSelector;
  priority: number;
  enabled: boolean;
  createdAt: Date;
}

/**
 * A resource's effective policy (docs/fleet.md §5): among the enabled policies whose selector
 * matches its effective labels, the lowest priority number, then the oldest; ties on both (same
 * instant) fall to the smaller ID so every replica picks the same one.
 */
export function effectivePolicy<P extends PolicyCandidate>(policies: readonly P[], labels: Labels): P | null {
  let best: P | null = null;
  for (const policy of policies) {
    if (!policy.enabled || !selectorMatches(policy.selector, labels)) continue;
    if (best == null || ranksBefore(policy, best)) best = policy;
  }
  return best;
}

function ranksBefore(a: PolicyCandidate, b: PolicyCandidate): boolean {
  if (a.priority !== b.priority) return a.priority < b.priority;
  const at = a.createdAt.getTime();
  const bt = b.createdAt.getTime();
  if (at !== bt) return at < bt;
  return a.id < b.id;
}
