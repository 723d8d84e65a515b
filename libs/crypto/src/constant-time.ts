import { timingSafeEqual } from 'node:crypto';

/** Constant-time equality that also tolerates different lengths without leaking where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
