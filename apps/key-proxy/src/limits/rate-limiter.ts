/**
 * Per-agent token bucket counted in keys: a bucket holds up to `burst` keys and refills at
 * `ratePerSecond`. A request costs the number of keys it asks for (at least 1), capped at the
 * burst so a full bucket always admits one maximal request. Idle agents' buckets are dropped.
 */
interface Bucket {
  tokens: number;
  updatedMs: number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;
  private readonly burst: number;
  private readonly maxBuckets: number;
  private readonly now: () => number;

  constructor(options: { ratePerSecond: number; burst: number; maxBuckets?: number; now?: () => number }) {
    this.ratePerMs = options.ratePerSecond / 1000;
    this.burst = options.burst;
    this.maxBuckets = options.maxBuckets ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  take(agent: string, cost: number): RateDecision {
    const now = this.now();
    const want = Math.min(Math.max(1, cost), this.burst);
    let bucket = this.buckets.get(agent);
    if (bucket) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.updatedMs) * this.ratePerMs);
      bucket.updatedMs = now;
    } else {
      if (this.buckets.size >= this.maxBuckets) this.dropFullBuckets(now);
      bucket = { tokens: this.burst, updatedMs: now };
      this.buckets.set(agent, bucket);
    }
    if (bucket.tokens >= want) {
      bucket.tokens -= want;
      return { allowed: true };
    }
    const waitMs = (want - bucket.tokens) / this.ratePerMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  get size(): number {
    return this.buckets.size;
  }

  /** A full bucket is the same as no bucket: forget those (and, if still too many, the oldest). */
  private dropFullBuckets(now: number): void {
    for (const [agent, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedMs) * this.ratePerMs >= this.burst) this.buckets.delete(agent);
    }
    while (this.buckets.size >= this.maxBuckets) {
      const oldest = this.buckets.keys().next().value;
      if (oldest === undefined) break;
      this.buckets.delete(oldest);
    }
  }
}
