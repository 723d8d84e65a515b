/** token use and auth failures are audited at most this often per key */
const AUDIT_THROTTLE_MS = 60_000;
const THROTTLE_MAX_KEYS = 10_000;

/**
 * "Has this key been audited in the last minute on this replica?" Keeps a tenant's log useful
 * (and bounded) when a token is used a thousand times a second or garbage credentials naming an
 * organization arrive in bulk. The map is cleared when full: worst case, a few extra entries.
 */
export class AuditThrottle {
  private readonly last = new Map<string, number>();

  due(key: string, now: number = Date.now()): boolean {
    const previous = this.last.get(key);
    if (previous != null && now - previous < AUDIT_THROTTLE_MS) return false;
    if (this.last.size >= THROTTLE_MAX_KEYS) this.last.clear();
    this.last.set(key, now);
    return true;
  }
}
