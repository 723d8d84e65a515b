/**
 * Remembers proof IDs for as long as a proof could still be accepted, so a captured request
 * cannot be replayed. Bounded: when full, the oldest entries go first — they are also the first to
 * expire, and a proof older than the acceptance window is refused on its `iat` anyway.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(options: { ttlMs: number; maxEntries?: number }) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries ?? 1_000_000;
  }

  /** Records the ID; returns false when it was already seen within the TTL. */
  checkAndRemember(id: string, now = Date.now()): boolean {
    this.evictExpired(now);
    const expiry = this.seen.get(id);
    if (expiry !== undefined && expiry > now) return false;
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.seen.set(id, now + this.ttlMs);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  // Map iteration order is insertion order and every entry has the same TTL, so expired entries
  // are always at the front.
  private evictExpired(now: number): void {
    for (const [id, expiry] of this.seen) {
      if (expiry > now) break;
      this.seen.delete(id);
    }
  }
}
