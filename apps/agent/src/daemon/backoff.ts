/**
 * Exponential backoff with full jitter (the delay is uniform in [0, min(max, base * 2^n)]), so a
 * fleet of agents that lost the control plane at the same moment does not come back in step.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** for tests: a random number in [0, 1) */
  random?: () => number;
}

/** docs/fleet.md §7: 1 s … 60 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 60_000 };

/** The delay before retry number `attempt` (1 = the first retry). */
export function backoffDelay(attempt: number, policy: BackoffPolicy): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return (policy.random ?? Math.random)() * ceiling;
}

/** Wait `ms`, or less when `signal` aborts (never throws). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
