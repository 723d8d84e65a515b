import { KeyProxyError, KeyProxyErrorCode, isKeyProxyError } from '../errors/key-proxy-error.ts';
import type { KekContext, KekProvider, KekProviderName, WrappedKey } from '../kek/kek-provider.ts';
import type { JsonLogger } from '../logging/json-logger.ts';
import type { KeyProxyMetrics } from '../metrics/key-proxy-metrics.ts';

/**
 * Wraps a KEK provider with a deadline per call, latency and error metrics, and error
 * normalization: whatever a provider throws reaches the HTTP layer as PROVIDER_ERROR or
 * PROVIDER_UNAVAILABLE (KeyProxyError), with the provider's own message logged, not returned.
 */
export class InstrumentedKekProvider implements KekProvider {
  readonly name: KekProviderName;
  private readonly inner: KekProvider;
  private readonly metrics: KeyProxyMetrics;
  private readonly logger: JsonLogger;
  private readonly timeoutMs: number;

  constructor(inner: KekProvider, options: { metrics: KeyProxyMetrics; logger: JsonLogger; timeoutMs?: number }) {
    this.inner = inner;
    this.name = inner.name;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey> {
    return this.call('wrap', () => this.inner.wrap(masterKey, context));
  }

  unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer> {
    return this.call('unwrap', () => this.inner.unwrap(wrapped, context), (key) => key.fill(0));
  }

  rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
    return this.call('rewrap', () => this.inner.rewrap(wrapped, context));
  }

  ready(): Promise<void> {
    return this.call('ready', () => this.inner.ready());
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** `discard` disposes of a result that arrives after the deadline (an unwrapped key is wiped). */
  private async call<T>(operation: string, fn: () => Promise<T>, discard?: (late: T) => void): Promise<T> {
    const end = this.metrics.providerDuration.startTimer({ operation });
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const attempt = fn();
    try {
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          reject(new KeyProxyError(KeyProxyErrorCode.ProviderUnavailable, `the ${this.name} KEK provider did not answer within ${this.timeoutMs / 1000} s`));
        }, this.timeoutMs);
      });
      return await Promise.race([attempt, deadline]);
    } catch (err) {
      const normalized = this.normalize(err);
      this.metrics.providerErrors.inc({ operation, code: normalized.code });
      if (operation !== 'ready') {
        const reason = err instanceof Error ? err.message : String(err);
        this.logger.warn('kek provider call failed', { provider: this.name, operation, code: normalized.code, reason });
      }
      if (timedOut && discard) attempt.then(discard, () => undefined);
      else attempt.catch(() => undefined);
      throw normalized;
    } finally {
      clearTimeout(timer);
      end();
    }
  }

  private normalize(err: unknown): KeyProxyError {
    if (isKeyProxyError(err, KeyProxyErrorCode.ProviderUnavailable) || isKeyProxyError(err, KeyProxyErrorCode.ProviderError)) return err;
    if (isKeyProxyError(err)) {
      // e.g. INVALID_REQUEST from the provider's own input checks: the envelope is unusable
      return new KeyProxyError(KeyProxyErrorCode.ProviderError, `the ${this.name} KEK provider refused: ${err.message}`, { cause: err });
    }
    // an unexpected failure's own message stays in the proxy's log
    return new KeyProxyError(KeyProxyErrorCode.ProviderError, `the ${this.name} KEK provider failed (the proxy's log has the reason)`, { cause: err });
  }
}
