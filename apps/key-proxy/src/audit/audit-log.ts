import type { JsonLogger } from '../logging/json-logger.ts';
import type { KeyProxyMetrics } from '../metrics/key-proxy-metrics.ts';
import type { AuditEvent, StoredAuditEvent } from './audit-event.ts';
import type { AuditStore } from './audit-store.ts';

/**
 * Records audit events without slowing issuance: `record` only pushes to a memory buffer, which
 * is written to SQLite (the durable, hash-chained log) in one transaction every `flushIntervalMs`,
 * or at once when `maxBuffered` events are waiting, so the buffer is bounded and no event is ever
 * dropped. Sinks (JSONL file, control-plane HTTP) are fed from SQLite, each from its own cursor,
 * asynchronously and with retries: a sink that is down delays nothing and loses nothing, and
 * events another process appended (the custodian's CLI) are delivered too.
 */
export interface AuditSink {
  /** stable name: its cursor in SQLite is kept under this name */
  readonly name: string;
  /** Delivers a batch, in order; throws to have it retried later. */
  deliver(events: readonly StoredAuditEvent[]): Promise<void>;
  close?(): Promise<void>;
}

const BATCH = 500;
const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

class SinkPump {
  readonly sink: AuditSink;
  private readonly store: AuditStore;
  private readonly logger: JsonLogger;
  private readonly metrics: KeyProxyMetrics | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private failures = 0;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(sink: AuditSink, store: AuditStore, logger: JsonLogger, metrics: KeyProxyMetrics | undefined) {
    this.sink = sink;
    this.store = store;
    this.logger = logger;
    this.metrics = metrics;
  }

  /** Starts a delivery round unless one is running (then it runs again after) or a backoff is pending. */
  kick(): void {
    if (this.stopped || Date.now() < this.retryAt) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.deliverAll().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** Delivery rounds until nothing is pending, a delivery fails or the deadline passes. */
  async drain(deadlineMs: number): Promise<void> {
    this.retryAt = 0;
    while (Date.now() < deadlineMs) {
      await this.running;
      if (this.pending() === 0) return;
      const before = this.failures;
      this.kick();
      await this.running;
      if (this.failures > before) return;
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  pending(): number {
    return this.store.lastSeq() - (this.store.cursor(this.sink.name) ?? 0);
  }

  private async deliverAll(): Promise<void> {
    for (;;) {
      const cursor = this.store.cursor(this.sink.name) ?? 0;
      const batch = this.store.readAfter(cursor, BATCH);
      this.metrics?.auditPending.set({ sink: this.sink.name }, this.store.lastSeq() - cursor);
      if (batch.length === 0) return;
      try {
        await this.sink.deliver(batch);
      } catch (err) {
        this.failures += 1;
        const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 10));
        const delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
        this.retryAt = Date.now() + delay;
        this.metrics?.auditFailures.inc({ sink: this.sink.name });
        this.logger.warn('audit delivery failed; will retry', {
          sink: this.sink.name, pending: this.store.lastSeq() - cursor, retryInMs: delay, error: err,
        });
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => {
          this.retryAt = 0;
          this.kick();
        }, delay);
        this.retryTimer.unref();
        return;
      }
      this.failures = 0;
      const last = batch.at(-1)!.seq;
      this.store.setCursor(this.sink.name, last);
      this.metrics?.auditDelivered.inc({ sink: this.sink.name }, batch.length);
      this.metrics?.auditPending.set({ sink: this.sink.name }, this.store.lastSeq() - last);
    }
  }
}

export class AuditLog {
  private readonly store: AuditStore;
  private readonly logger: JsonLogger;
  private readonly pumps: SinkPump[];
  private readonly maxBuffered: number;
  private readonly flushIntervalMs: number;
  private buffer: AuditEvent[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly pollTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: {
    store: AuditStore;
    sinks: readonly AuditSink[];
    logger: JsonLogger;
    metrics?: KeyProxyMetrics;
    maxBuffered?: number;
    flushIntervalMs?: number;
    /** how often sinks look for events appended by other processes (the CLI) */
    pollIntervalMs?: number;
  }) {
    this.store = options.store;
    this.logger = options.logger;
    this.pumps = options.sinks.map((sink) => new SinkPump(sink, options.store, options.logger, options.metrics));
    this.maxBuffered = options.maxBuffered ?? 10_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 200;
    if (this.pumps.length > 0) {
      this.pollTimer = setInterval(() => this.kickSinks(), options.pollIntervalMs ?? 2000);
      this.pollTimer.unref();
      this.kickSinks(); // deliver what a previous run left undelivered
    }
  }

  record(event: AuditEvent): void {
    if (this.closed) {
      this.store.append([event]);
      return;
    }
    this.buffer.push(event);
    if (this.buffer.length >= this.maxBuffered) this.flush();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), this.flushIntervalMs);
      this.flushTimer.unref();
    }
  }

  /** Writes buffered events to SQLite now and wakes the sinks. */
  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.buffer.length === 0) return;
    const events = this.buffer;
    this.buffer = [];
    try {
      this.store.append(events);
    } catch (err) {
      // keep them for the next attempt rather than lose them (e.g. the database is busy)
      this.buffer = events.concat(this.buffer);
      this.logger.error('cannot write audit events to the state database; will retry', { events: events.length, error: err });
      this.flushTimer = setTimeout(() => this.flush(), 1000);
      this.flushTimer.unref();
      return;
    }
    this.kickSinks();
  }

  /** Flushes, then gives the sinks until `timeoutMs` to deliver what is pending; what remains stays in SQLite. */
  async close(timeoutMs = 5000): Promise<void> {
    this.closed = true;
    clearInterval(this.pollTimer);
    this.flush();
    const deadline = Date.now() + timeoutMs;
    await Promise.all(this.pumps.map((p) => p.drain(deadline)));
    for (const pump of this.pumps) {
      pump.stop();
      const pending = pump.pending();
      if (pending > 0) this.logger.warn('audit events left undelivered; they will be sent at the next start', { sink: pump.sink.name, pending });
      await pump.sink.close?.();
    }
  }

  private kickSinks(): void {
    for (const pump of this.pumps) pump.kick();
  }
}
