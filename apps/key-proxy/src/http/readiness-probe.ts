import { isKeyProxyError } from '../errors/key-proxy-error.ts';
import type { KekProvider } from '../kek/kek-provider.ts';

/**
 * Is the KEK provider answering? `provider.ready()` with a short deadline, its answer cached for a
 * few seconds so a load balancer polling /readyz does not hammer Vault, KMS or the HSM.
 */
export type Readiness = { ready: true } | { ready: false; reason: string };

export class ReadinessProbe {
  private readonly provider: KekProvider;
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private cached: { at: number; result: Readiness } | undefined;
  private pending: Promise<Readiness> | undefined;
  private shuttingDown = false;

  constructor(provider: KekProvider, options: { timeoutMs?: number; cacheMs?: number } = {}) {
    this.provider = provider;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.cacheMs = options.cacheMs ?? 3000;
  }

  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  async check(): Promise<Readiness> {
    if (this.shuttingDown) return { ready: false, reason: 'the key proxy is shutting down' };
    if (this.cached && Date.now() - this.cached.at < this.cacheMs) return this.cached.result;
    this.pending ??= this.probe().then((result) => {
      this.cached = { at: Date.now(), result };
      this.pending = undefined;
      return result;
    });
    return this.pending;
  }

  private async probe(): Promise<Readiness> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.provider.ready(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the ${this.provider.name} KEK provider did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
      return { ready: true };
    } catch (err) {
      return { ready: false, reason: isKeyProxyError(err) || err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
  }
}
