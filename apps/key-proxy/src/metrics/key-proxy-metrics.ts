import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheObserver } from '../keys/master-key-cache.ts';

/**
 * Prometheus metrics of the proxy (GET /metrics), on a registry of its own so several proxies can
 * run in one process (tests). Labels are bounded sets: routes are templates, never raw paths.
 */
export class KeyProxyMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'status'>;
  readonly requestDuration: Histogram<'route'>;
  readonly keysIssued: Counter<'purpose' | 'kind'>;
  readonly masterKeysCreated: Counter;
  readonly envelopesRewrapped: Counter;
  readonly refusals: Counter<'code'>;
  readonly rateLimited: Counter;
  readonly cacheHits: Counter;
  readonly cacheMisses: Counter;
  readonly cacheSize: Gauge;
  readonly providerDuration: Histogram<'operation'>;
  readonly providerErrors: Counter<'operation' | 'code'>;
  readonly auditPending: Gauge<'sink'>;
  readonly auditDelivered: Counter<'sink'>;
  readonly auditFailures: Counter<'sink'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'arca_kp_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers });
    this.requestDuration = new Histogram({
      name: 'arca_kp_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['route'], registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    this.keysIssued = new Counter({
      name: 'arca_kp_keys_issued_total', help: 'keys issued to agents, by purpose (agent, read, write) and kind (mac, chunker, blob, file)',
      labelNames: ['purpose', 'kind'], registers,
    });
    this.masterKeysCreated = new Counter({ name: 'arca_kp_master_keys_created_total', help: 'master keys created (store init)', registers });
    this.envelopesRewrapped = new Counter({ name: 'arca_kp_envelopes_rewrapped_total', help: 'envelopes rewrapped', registers });
    this.refusals = new Counter({ name: 'arca_kp_refusals_total', help: 'refused requests by error code', labelNames: ['code'], registers });
    this.rateLimited = new Counter({ name: 'arca_kp_rate_limited_total', help: 'requests refused by the per-agent rate limit', registers });
    this.cacheHits = new Counter({ name: 'arca_kp_key_cache_hits_total', help: 'store-key cache hits', registers });
    this.cacheMisses = new Counter({ name: 'arca_kp_key_cache_misses_total', help: 'store-key cache misses (unwraps)', registers });
    this.cacheSize = new Gauge({ name: 'arca_kp_key_cache_entries', help: 'stores whose keys are in memory', registers });
    this.providerDuration = new Histogram({
      name: 'arca_kp_provider_duration_seconds', help: 'KEK provider call latency by operation', labelNames: ['operation'], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.providerErrors = new Counter({
      name: 'arca_kp_provider_errors_total', help: 'KEK provider failures by operation and code', labelNames: ['operation', 'code'], registers,
    });
    this.auditPending = new Gauge({ name: 'arca_kp_audit_pending_events', help: 'audit events not yet delivered, by sink', labelNames: ['sink'], registers });
    this.auditDelivered = new Counter({ name: 'arca_kp_audit_delivered_total', help: 'audit events delivered, by sink', labelNames: ['sink'], registers });
    this.auditFailures = new Counter({ name: 'arca_kp_audit_delivery_failures_total', help: 'failed audit deliveries, by sink', labelNames: ['sink'], registers });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'arca_kp_' });
  }

  cacheObserver(): CacheObserver {
    return {
      hit: () => this.cacheHits.inc(),
      miss: () => this.cacheMisses.inc(),
      size: (entries) => this.cacheSize.set(entries),
    };
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
