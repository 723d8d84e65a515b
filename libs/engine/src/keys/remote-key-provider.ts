import type { AgentIdentity, AgentKeys } from '@arca/crypto';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import type { FileKeyRef } from '../format/sealed-file.ts';
import type { KeyProvider, KeyPurpose } from './key-provider.ts';
import { KeyProxyClient } from './key-proxy-client.ts';

/**
 * Keys from a key proxy (managed stores, docs/key-proxy.md). The agent keys (K_mac, K_cdc) are
 * fetched once, when the provider is created; blob and file keys are fetched on demand:
 *
 * - batching: calls made in the same turn of the event loop are merged into one request, and a
 *   request carries at most `maxItemsPerRequest` (10,000) keys. Write keys (a backup: many
 *   batches in flight, so latency is hidden) wait up to `lingerMs` (40 ms) for company while
 *   write requests are not tiny, which cuts a backup's requests by about 3x: the proxy's cost is
 *   mostly per request (proof verification, audit), not per key. Restore announces a
 *   directory's keys with prefetchBlobKeys, so they come in one request;
 * - pipelining: up to `maxRequestsInFlight` requests at once; while they run, new calls queue up
 *   and leave together in the next request;
 * - caching: a bounded LRU of keys. A key is the same whatever the purpose, so a key fetched for
 *   writing also serves reads, but a key fetched for reading never serves a write: the proxy
 *   authorizes writes separately, and the agent must not get around that;
 * - retries: in KeyProxyClient (429, 503, network errors; bounded time).
 *
 * Callers receive copies of the cached keys, so evicting (and zeroing) a cache entry never
 * changes a key a caller is still using. `close()` zeroes every cached key and the agent keys.
 */
export const MAX_KEYS_PER_REQUEST = 10_000;
const DEFAULT_MAX_IN_FLIGHT = 8;
const DEFAULT_LINGER_MS = 40;
/**
 * Write keys linger only while write requests carry at least this many keys: at the end of a
 * backup the calls come one key at a time, each waiting for the previous one (a directory's tree
 * after its children's, the index, the snapshot), and lingering would only add latency there.
 */
const LINGER_MIN_KEYS = 4;
const DEFAULT_CACHE_ENTRIES = 65_536;
const KEY_BYTES = 32;

export interface RemoteKeyProviderOptions {
  /** the key proxy's base URL */
  url: string;
  storeId: string;
  envelope: string;
  token: string;
  identity: AgentIdentity;
  maxItemsPerRequest?: number;
  maxRequestsInFlight?: number;
  /** how long a write key waits for others to share its request (default 40 ms: measured 9 % backup overhead at 20 ms, 5–6 % at 40 ms; reads do not wait) */
  lingerMs?: number;
  cacheEntries?: number;
  /** see KeyProxyClientOptions */
  retryBudgetMs?: number;
  requestTimeoutMs?: number;
}

interface WireFile {
  kind: number;
  keyId: string;
}

/** One key asked for, shared by every call waiting for it. */
interface PendingItem {
  cacheKey: string;
  blobId?: string;
  file?: WireFile;
  waiters: { call: PendingCall; index: number }[];
}

interface PendingCall {
  results: Buffer[];
  remaining: number;
  settled: boolean;
  resolve: (keys: Buffer[]) => void;
  reject: (err: unknown) => void;
}

interface CacheEntry {
  key: Buffer;
  /** fetched with purpose "write": also valid for writes */
  write: boolean;
}

export interface RemoteKeyProviderStats {
  requests: number;
  keysFetched: number;
  cacheHits: number;
}

export class RemoteKeyProvider implements KeyProvider {
  readonly agentKeys: AgentKeys;
  readonly stats: RemoteKeyProviderStats = { requests: 0, keysFetched: 0, cacheHits: 0 };
  private readonly client: KeyProxyClient;
  private readonly path: string;
  private readonly envelope: string;
  private readonly maxItems: number;
  private readonly maxInFlight: number;
  private readonly lingerMs: number;
  private readonly cacheEntries: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly queues: Record<KeyPurpose, PendingItem[]> = { read: [], write: [] };
  /** queued or in flight, by purpose and cache key */
  private readonly pending: Record<KeyPurpose, Map<string, PendingItem>> = { read: new Map(), write: new Map() };
  private inFlight = 0;
  private immediateScheduled = false;
  /** write keys wait up to lingerMs for company; then (or when a request is full) they are due */
  private writeDue = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private lastWriteRequestKeys = LINGER_MIN_KEYS;
  private nextPurpose: KeyPurpose = 'write';
  private closed = false;

  private constructor(options: RemoteKeyProviderOptions, client: KeyProxyClient, agentKeys: AgentKeys) {
    this.client = client;
    this.agentKeys = agentKeys;
    this.path = `/v1/stores/${options.storeId}/keys`;
    this.envelope = options.envelope;
    this.maxItems = Math.max(1, Math.min(MAX_KEYS_PER_REQUEST, options.maxItemsPerRequest ?? MAX_KEYS_PER_REQUEST));
    this.maxInFlight = Math.max(1, options.maxRequestsInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.lingerMs = Math.max(0, options.lingerMs ?? DEFAULT_LINGER_MS);
    this.cacheEntries = Math.max(0, options.cacheEntries ?? DEFAULT_CACHE_ENTRIES);
  }

  /** Fetch the agent keys (`POST /v1/stores/{id}/agent-keys`) and return a ready provider. */
  static async create(options: RemoteKeyProviderOptions): Promise<RemoteKeyProvider> {
    if (!/^[0-9a-f]{64}$/.test(options.storeId)) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'a store ID is 64 hex digits');
    const client = new KeyProxyClient({
      url: options.url,
      token: options.token,
      identity: options.identity,
      ...(options.retryBudgetMs !== undefined ? { retryBudgetMs: options.retryBudgetMs } : {}),
      ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    });
    const what = 'the agent keys';
    try {
      const body = (await client.post(`/v1/stores/${options.storeId}/agent-keys`, { envelope: options.envelope }, what)) as { macKey?: unknown; chunkerKey?: unknown };
      const macKey = decodeKey(body?.macKey);
      const chunkerKey = decodeKey(body?.chunkerKey);
      if (!macKey || !chunkerKey) throw client.invalidResponse(what, 'macKey and chunkerKey must be 32-byte base64url strings');
      return new RemoteKeyProvider(options, client, { macKey, chunkerKey });
    } catch (err) {
      client.close();
      throw err;
    }
  }

  get url(): string {
    return this.client.url;
  }

  /** Send later requests with a fresh job token for the same store (see KeyProxyClient.setToken). */
  setToken(token: string): void {
    this.client.setToken(token);
  }

  async blobKeys(ids: readonly Buffer[], purpose: KeyPurpose): Promise<Buffer[]> {
    return this.getKeys(
      ids.map((id) => {
        const hex = id.toString('hex');
        return { cacheKey: hex, blobId: hex };
      }),
      purpose,
    );
  }

  async fileKeys(refs: readonly FileKeyRef[], purpose: KeyPurpose): Promise<Buffer[]> {
    return this.getKeys(
      refs.map((r) => {
        const keyId = r.keyId.toString('hex');
        return { cacheKey: `f${r.kind}:${keyId}`, file: { kind: r.kind, keyId } };
      }),
      purpose,
    );
  }

  /**
   * Queue the keys of `ids` that are neither cached nor asked for yet, without waiting: later
   * calls for them join the request. At most half the cache, so a prefetch never evicts itself.
   */
  prefetchBlobKeys(ids: readonly Buffer[], purpose: KeyPurpose): void {
    if (this.closed || ids.length === 0) return;
    const limit = Math.floor(this.cacheEntries / 2);
    const wanted: { cacheKey: string; blobId: string }[] = [];
    for (const id of ids) {
      if (wanted.length >= limit) break;
      const hex = id.toString('hex');
      const cached = this.cache.get(hex);
      if ((cached && (purpose === 'read' || cached.write)) || this.pending.write.has(hex) || (purpose === 'read' && this.pending.read.has(hex))) continue;
      wanted.push({ cacheKey: hex, blobId: hex });
    }
    if (wanted.length > 0) this.getKeys(wanted, purpose).catch(() => undefined); // the real call reports errors
  }

  /** Zero every cached key and the agent keys; later calls fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.cache.values()) entry.key.fill(0);
    this.cache.clear();
    this.agentKeys.macKey.fill(0);
    this.agentKeys.chunkerKey.fill(0);
    this.client.close();
    clearTimeout(this.lingerTimer);
    const closedError = new ArcaError(ArcaErrorCode.InvalidArgument, 'the key provider was closed');
    for (const purpose of ['read', 'write'] as const) {
      for (const item of this.queues[purpose]) for (const w of item.waiters) this.fail(w.call, closedError);
      this.queues[purpose] = [];
    }
  }

  private getKeys(items: { cacheKey: string; blobId?: string; file?: WireFile }[], purpose: KeyPurpose): Promise<Buffer[]> {
    if (this.closed) return Promise.reject(new ArcaError(ArcaErrorCode.InvalidArgument, 'the key provider was closed'));
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<Buffer[]>((resolve, reject) => {
      const call: PendingCall = { results: new Array<Buffer>(items.length), remaining: items.length, settled: false, resolve, reject };
      let queued = false;
      items.forEach((item, index) => {
        const cached = this.cache.get(item.cacheKey);
        if (cached && (purpose === 'read' || cached.write)) {
          // LRU: move to the back
          this.cache.delete(item.cacheKey);
          this.cache.set(item.cacheKey, cached);
          this.stats.cacheHits++;
          call.results[index] = Buffer.from(cached.key);
          call.remaining--;
          return;
        }
        // a write fetch in progress also serves a read; a read fetch never serves a write
        const existing = this.pending.write.get(item.cacheKey) ?? (purpose === 'read' ? this.pending.read.get(item.cacheKey) : undefined);
        if (existing) {
          existing.waiters.push({ call, index });
          return;
        }
        const fresh: PendingItem = { cacheKey: item.cacheKey, waiters: [{ call, index }], ...(item.blobId ? { blobId: item.blobId } : {}), ...(item.file ? { file: item.file } : {}) };
        this.pending[purpose].set(item.cacheKey, fresh);
        if (purpose === 'write' && this.queues.write.length === 0) this.startLinger();
        this.queues[purpose].push(fresh);
        queued = true;
      });
      if (call.remaining === 0) {
        call.settled = true;
        resolve(call.results);
        return;
      }
      if (queued) this.scheduleFlush();
    });
  }

  /** The first write key queued starts the linger period (when lingering pays, see LINGER_MIN_KEYS). */
  private startLinger(): void {
    if (this.lingerMs === 0 || this.lastWriteRequestKeys < LINGER_MIN_KEYS) {
      this.writeDue = true;
      return;
    }
    this.writeDue = false;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      this.writeDue = true;
      this.flush();
    }, this.lingerMs);
  }

  /**
   * Reads leave on the next turn of the event loop (callers such as restore wait for each file's
   * keys, so latency matters there); writes (a backup, where many batches are in flight) wait
   * `lingerMs` for others to share their request. Either leaves at once when a request is full.
   */
  private scheduleFlush(): void {
    if (this.immediateScheduled) return;
    this.immediateScheduled = true;
    setImmediate(() => {
      this.immediateScheduled = false;
      this.flush();
    });
  }

  private ready(purpose: KeyPurpose): boolean {
    const queue = this.queues[purpose];
    if (queue.length === 0) return false;
    return purpose === 'read' || this.writeDue || queue.length >= this.maxItems;
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && !this.closed) {
      const other: KeyPurpose = this.nextPurpose === 'write' ? 'read' : 'write';
      const purpose = this.ready(this.nextPurpose) ? this.nextPurpose : this.ready(other) ? other : undefined;
      if (purpose === undefined) return;
      this.nextPurpose = purpose === 'write' ? 'read' : 'write';
      const batch = this.queues[purpose].splice(0, this.maxItems);
      if (purpose === 'write') this.lastWriteRequestKeys = batch.length;
      if (purpose === 'write' && this.queues.write.length === 0) {
        this.writeDue = false;
        clearTimeout(this.lingerTimer);
        this.lingerTimer = undefined;
      }
      this.inFlight++;
      void this.send(purpose, batch).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async send(purpose: KeyPurpose, batch: PendingItem[]): Promise<void> {
    const blobItems = batch.filter((i) => i.blobId !== undefined);
    const fileItems = batch.filter((i) => i.file !== undefined);
    const what = `${purpose} keys for ${batch.length} object${batch.length === 1 ? '' : 's'}`;
    try {
      this.stats.requests++;
      const body = (await this.client.post(
        this.path,
        { envelope: this.envelope, purpose, blobIds: blobItems.map((i) => i.blobId!), files: fileItems.map((i) => i.file!) },
        what,
      )) as { blobKeys?: unknown; fileKeys?: unknown };
      const blobKeys = decodeKeyList(body?.blobKeys, blobItems.length);
      const fileKeys = decodeKeyList(body?.fileKeys, fileItems.length);
      if (!blobKeys || !fileKeys) throw this.client.invalidResponse(what, 'blobKeys / fileKeys do not match the request (count or key size)');
      this.stats.keysFetched += batch.length;
      blobItems.forEach((item, i) => this.deliver(purpose, item, blobKeys[i]!));
      fileItems.forEach((item, i) => this.deliver(purpose, item, fileKeys[i]!));
    } catch (err) {
      for (const item of batch) {
        this.pending[purpose].delete(item.cacheKey);
        for (const w of item.waiters) this.fail(w.call, err);
      }
    }
  }

  private deliver(purpose: KeyPurpose, item: PendingItem, key: Buffer): void {
    this.pending[purpose].delete(item.cacheKey);
    for (const { call, index } of item.waiters) {
      if (call.settled) continue;
      call.results[index] = Buffer.from(key);
      if (--call.remaining === 0) {
        call.settled = true;
        call.resolve(call.results);
      }
    }
    if (this.closed || this.cacheEntries === 0) {
      key.fill(0);
      return;
    }
    const previous = this.cache.get(item.cacheKey);
    if (previous) {
      this.cache.delete(item.cacheKey);
      if (previous.key !== key) previous.key.fill(0);
    }
    this.cache.set(item.cacheKey, { key, write: purpose === 'write' || Boolean(previous?.write) });
    while (this.cache.size > this.cacheEntries) {
      const [oldestKey, oldest] = this.cache.entries().next().value!;
      this.cache.delete(oldestKey);
      oldest.key.fill(0);
    }
  }

  private fail(call: PendingCall, err: unknown): void {
    if (call.settled) return;
    call.settled = true;
    call.reject(err);
  }
}

function decodeKey(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(value)) return undefined;
  const key = Buffer.from(value, 'base64url');
  return key.length === KEY_BYTES ? key : undefined;
}

function decodeKeyList(value: unknown, expected: number): Buffer[] | undefined {
  if (expected === 0 && value === undefined) return [];
  if (!Array.isArray(value) || value.length !== expected) return undefined;
  const keys: Buffer[] = [];
  for (const v of value) {
    const key = decodeKey(v);
    if (!key) return undefined;
    keys.push(key);
  }
  return keys;
}
