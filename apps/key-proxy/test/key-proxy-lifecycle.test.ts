import { describe, expect, it } from 'vitest';
import type { KekContext, KekProvider, WrappedKey } from '../src/kek/kek-provider.ts';
import { LocalKekProvider } from '../src/kek/local-kek-provider.ts';
import { Agent, call, initStore, newWorkspace, startTestProxy, storeId } from './helpers/key-proxy-harness.ts';

/** The real local provider, with a slow unwrap, to catch requests in flight. */
class SlowUnwrapProvider implements KekProvider {
  readonly name = 'local' as const;
  readonly inner: LocalKekProvider;
  delayMs = 0;
  unwraps = 0;
  closed = false;

  constructor(inner: LocalKekProvider) {
    this.inner = inner;
  }

  wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey> {
    return this.inner.wrap(masterKey, context);
  }

  async unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer> {
    this.unwraps += 1;
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return this.inner.unwrap(wrapped, context);
  }

  rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
    return this.inner.rewrap(wrapped, context);
  }

  ready(): Promise<void> {
    return this.inner.ready();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inner.close();
  }
}

describe('lifecycle', () => {
  it('shares one unwrap between concurrent requests, finishes in-flight requests on close, then wipes the cache and closes the provider', async () => {
    const ws = await newWorkspace();
    try {
      const provider = new SlowUnwrapProvider(await LocalKekProvider.open({ kekFile: ws.kekFile }));
      // one store in the cache: initializing a second store evicts the first
      const proxy = await startTestProxy(ws.env({ ARCA_KP_CACHE_MAX_STORES: '1' }), { provider });
      const agent = new Agent();
      const store = storeId();
      const envelope = await initStore(proxy.url, ws.issuer, agent, store);
      await initStore(proxy.url, ws.issuer, agent, storeId());
      const before = provider.unwraps;
      provider.delayMs = 300;
      const ask = async () => {
        const token = await agent.token(ws.issuer, { ops: ['restore'], store });
        return call(proxy.url, `/v1/stores/${store}/agent-keys`, { token, signer: agent.identity, body: { envelope } });
      };
      const inflight = [ask(), ask(), ask()];
      await new Promise((resolve) => setTimeout(resolve, 100));
      const closing = proxy.close();
      const results = await Promise.all(inflight);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(provider.unwraps - before).toBe(1); // the concurrent misses shared one unwrap
      await closing;
      expect(provider.closed).toBe(true);
      expect(await proxy.metrics.registry.getSingleMetricAsString('arca_kp_key_cache_entries')).toMatch(/arca_kp_key_cache_entries 0/);
      await expect(fetch(`${proxy.url}/healthz`)).rejects.toThrow();
    } finally {
      ws.cleanup();
    }
  });
});
