import type { Envelope } from './envelope.ts';
import { envelopeDigest } from './envelope.ts';
import { StoreKeyMaterial } from './store-key-material.ts';

/**
 * Unwrapped store keys, by envelope: SHA-256 of the envelope string → the keys derived from its
 * master key (never the master key itself). Bounded in time (an entry lives `ttlMs` after its
 * unwrap, however busy: the provider is asked again after that, so a revoked KEK takes effect) and
 * in size (least recently used out first). Every eviction wipes the entry's buffers, and so does
 * clear() at shutdown. Concurrent misses for the same envelope share one unwrap.
 */
export interface CacheObserver {
  hit(): void;
  miss(): void;
  size(entries: number): void;
}

interface Entry {
  material: StoreKeyMaterial;
  expiresAt: number;
}

export class MasterKeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<StoreKeyMaterial>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly unwrap: (envelope: Envelope) => Promise<Buffer>;
  private readonly observer: CacheObserver | undefined;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(options: {
    ttlMs: number;
    maxEntries: number;
    /** returns the 32-byte master key; the cache zeroes it after deriving */
    unwrap: (envelope: Envelope) => Promise<Buffer>;
    observer?: CacheObserver;
    now?: () => number;
  }) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries;
    this.unwrap = options.unwrap;
    this.observer = options.observer;
    this.now = options.now ?? Date.now;
    // expired entries are wiped promptly even when nobody asks for them
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.ttlMs, 5000));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The store keys for `envelope` (whose string form is `envelopeText`). Use the result
   * synchronously: an entry may be evicted once the caller yields to the event loop.
   */
  async get(envelopeText: string, envelope: Envelope): Promise<StoreKeyMaterial> {
    const digest = envelopeDigest(envelopeText);
    const entry = this.entries.get(digest);
    if (entry) {
      if (entry.expiresAt > this.now()) {
        // LRU: move to the back
        this.entries.delete(digest);
        this.entries.set(digest, entry);
        this.observer?.hit();
        return entry.material;
      }
      this.evict(digest, entry);
    }
    this.observer?.miss();
    let pending = this.inflight.get(digest);
    if (!pending) {
      pending = this.load(digest, envelope);
      this.inflight.set(digest, pending);
      const forget = () => this.inflight.delete(digest);
      pending.then(forget, forget);
    }
    return pending;
  }

  /** Caches the keys of a master key the proxy has just created; zeroes `masterKey`. */
  prime(envelopeText: string, envelope: Envelope, masterKey: Buffer): void {
    const material = StoreKeyMaterial.fromMasterKey(masterKey, { org: envelope.org, store: envelope.store });
    if (this.closed) material.destroy();
    else this.insert(envelopeDigest(envelopeText), material);
  }

  /** Wipes every entry (shutdown). Unwraps still in flight are wiped when they complete. */
  clear(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const [digest, entry] of this.entries) this.evict(digest, entry);
  }

  private async load(digest: string, envelope: Envelope): Promise<StoreKeyMaterial> {
    const masterKey = await this.unwrap(envelope);
    const material = StoreKeyMaterial.fromMasterKey(masterKey, { org: envelope.org, store: envelope.store });
    if (this.closed) {
      material.destroy();
      return material; // the caller's use fails with a retryable error; the proxy is shutting down
    }
    this.insert(digest, material);
    return material;
  }

  private insert(digest: string, material: StoreKeyMaterial): void {
    const previous = this.entries.get(digest);
    if (previous) this.evict(digest, previous);
    while (this.entries.size >= this.maxEntries) {
      const [oldest, entry] = this.entries.entries().next().value as [string, Entry];
      this.evict(oldest, entry);
    }
    this.entries.set(digest, { material, expiresAt: this.now() + this.ttlMs });
    this.observer?.size(this.entries.size);
  }

  private sweep(): void {
    const now = this.now();
    for (const [digest, entry] of this.entries) if (entry.expiresAt <= now) this.evict(digest, entry);
  }

  private evict(digest: string, entry: Entry): void {
    this.entries.delete(digest);
    entry.material.destroy();
    this.observer?.size(this.entries.size);
  }
}
