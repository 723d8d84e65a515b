import { readFile } from 'node:fs/promises';
import type { DatabaseSync } from 'node:sqlite';
import { JobTokenVerifier, ReplayCache, type JwksSource } from '@arca/crypto';
import { AuditLog, type AuditSink } from './audit/audit-log.ts';
import { AuditStore } from './audit/audit-store.ts';
import { HttpAuditSink } from './audit/http-audit-sink.ts';
import { JsonlFileSink } from './audit/jsonl-file-sink.ts';
import { RequestAuthenticator } from './auth/request-authenticator.ts';
import { RequestAuthorizer } from './auth/request-authorizer.ts';
import type { KeyProxyConfig } from './config/key-proxy-config.ts';
import { openConfiguredProvider } from './config/provider-settings.ts';
import { KeyProxyError, KeyProxyErrorCode } from './errors/key-proxy-error.ts';
import { GrantStore } from './grants/grant-store.ts';
import { KeyProxyServer } from './http/key-proxy-server.ts';
import type { KeyProxyServices } from './http/key-proxy-services.ts';
import { ReadinessProbe } from './http/readiness-probe.ts';
import type { KekProvider } from './kek/kek-provider.ts';
import { InstrumentedKekProvider } from './keys/instrumented-kek-provider.ts';
import { MasterKeyCache } from './keys/master-key-cache.ts';
import { MasterKeyRegistry } from './keys/master-key-registry.ts';
import { RateLimiter } from './limits/rate-limiter.ts';
import { JsonLogger } from './logging/json-logger.ts';
import { KeyProxyMetrics } from './metrics/key-proxy-metrics.ts';
import { openStateDatabase } from './state/state-database.ts';

/**
 * Assembles and starts a key proxy from its configuration; `close()` stops it gracefully: no new
 * connections, in-flight requests finish, the key cache is wiped, the audit log is flushed, the
 * provider and the database are closed.
 */
export interface StartKeyProxyOptions {
  logger?: JsonLogger;
  /** use this provider instead of opening the configured one (tests); it is closed with the proxy */
  provider?: KekProvider;
  /** collect process metrics (default true) */
  defaultMetrics?: boolean;
  /** how long /readyz reuses the provider's answer (default 3000 ms) */
  readinessCacheMs?: number;
}

export interface RunningKeyProxy {
  /** the base URL agents use (ARCA_KP_PUBLIC_URL, or the bound address) */
  readonly url: string;
  /** the address actually bound */
  readonly listenUrl: string;
  readonly metrics: KeyProxyMetrics;
  close(options?: { graceMs?: number }): Promise<void>;
}

/** Proofs are accepted for 60 s either side of the proxy's clock: remember their IDs for 120 s. */
const REPLAY_WINDOW_MS = 120_000;

export async function startKeyProxy(config: KeyProxyConfig, options: StartKeyProxyOptions = {}): Promise<RunningKeyProxy> {
  const logger = options.logger ?? new JsonLogger({ level: config.logLevel });
  const cleanup: Array<() => Promise<void> | void> = [];
  const undo = async () => {
    for (const step of cleanup.reverse()) await Promise.resolve(step()).catch(() => undefined);
  };
  try {
    const db = openStateDatabase(config.dataDir);
    cleanup.push(() => db.close());
    const jwks = await jwksSource(config);
    const tls = config.tls ? await readTls(config.tls) : undefined;
    const metrics = new KeyProxyMetrics({ defaultMetrics: options.defaultMetrics ?? true });

    const rawProvider = options.provider ?? (await openConfiguredProvider(config.kek));
    cleanup.push(() => rawProvider.close());
    const provider = new InstrumentedKekProvider(rawProvider, { metrics, logger });

    const auditStore = new AuditStore(db);
    const sinks = await auditSinks(config, auditStore);
    const audit = new AuditLog({ store: auditStore, sinks, logger, metrics });
    cleanup.push(() => audit.close(1000));

    const cache = new MasterKeyCache({
      ttlMs: config.cache.ttlSeconds * 1000,
      maxEntries: config.cache.maxStores,
      unwrap: (envelope) => provider.unwrap({ kek: envelope.kek, ct: envelope.ct }, { org: envelope.org, store: envelope.store }),
      observer: metrics.cacheObserver(),
    });
    cleanup.push(() => cache.clear());

    let publicUrl = config.publicUrl ?? '';
    const services: KeyProxyServices = {
      logger,
      metrics,
      authenticator: new RequestAuthenticator({
        verifier: new JobTokenVerifier({ issuer: config.issuer, audience: config.audience, source: jwks }),
        replayCache: new ReplayCache({ ttlMs: REPLAY_WINDOW_MS }),
        publicBaseUrl: () => publicUrl,
      }),
      authorizer: new RequestAuthorizer({ grants: new GrantStore(db), strict: config.strict }),
      rateLimiter: new RateLimiter({ ratePerSecond: config.rateLimit.keysPerSecond, burst: config.rateLimit.burst }),
      cache,
      provider,
      masterKeys: new MasterKeyRegistry(db),
      audit,
      readiness: new ReadinessProbe(provider, options.readinessCacheMs !== undefined ? { cacheMs: options.readinessCacheMs } : {}),
    };
    const server = new KeyProxyServer(services, tls ? { tls } : {});
    const address = await server.listen(config.listen.host, config.listen.port).catch((err: NodeJS.ErrnoException) => {
      throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `cannot listen on ${config.listen.host}:${config.listen.port} (${err.code ?? err.message})`);
    });
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const listenUrl = `${tls ? 'https' : 'http'}://${host}:${address.port}`;
    publicUrl = config.publicUrl ?? listenUrl;

    logger.info('listening', {
      url: publicUrl, listen: listenUrl, provider: provider.name, strict: config.strict, tls: tls !== undefined,
      auditSinks: sinks.map((s) => s.name),
    });

    let closing: Promise<void> | undefined;
    return {
      url: publicUrl,
      listenUrl,
      metrics,
      close: ({ graceMs = 10_000 } = {}) =>
        (closing ??= (async () => {
          services.readiness.markShuttingDown();
          await server.close(graceMs);
          cache.clear();
          await audit.close();
          await rawProvider.close().catch((err: unknown) => logger.warn('closing the KEK provider failed', { error: err }));
          closeQuietly(db);
          logger.info('stopped');
        })()),
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

async function jwksSource(config: KeyProxyConfig): Promise<JwksSource> {
  if ('url' in config.jwks) return { jwksUrl: config.jwks.url };
  const file = config.jwks.file;
  let jwks: unknown;
  try {
    jwks = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `ARCA_KP_JWKS_FILE ${file} is not a readable JSON file: ${(err as Error).message}`);
  }
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `ARCA_KP_JWKS_FILE ${file} must be a JWKS: { "keys": [ ...the control plane's public keys ] }`);
  }
  if (keys.some((k: Record<string, unknown>) => typeof k !== 'object' || k === null || 'd' in k)) {
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `ARCA_KP_JWKS_FILE ${file} holds a private key: give the proxy only the public keys`);
  }
  return { jwks: { keys } };
}

async function readTls(tls: { certFile: string; keyFile: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, name: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `cannot read ${name} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  return { cert: await read(tls.certFile, 'ARCA_KP_TLS_CERT_FILE'), key: await read(tls.keyFile, 'ARCA_KP_TLS_KEY_FILE') };
}

async function auditSinks(config: KeyProxyConfig, store: AuditStore): Promise<AuditSink[]> {
  const sinks: AuditSink[] = [];
  if (config.audit.file) sinks.push(new JsonlFileSink(config.audit.file));
  if (config.audit.url) {
    const sink = new HttpAuditSink({ url: config.audit.url, tokenFile: config.audit.tokenFile!, proxyId: store.proxyId });
    await sink.loadToken(); // a missing or world-readable token file is a start-up error
    sinks.push(sink);
  }
  return sinks;
}

function closeQuietly(db: DatabaseSync): void {
  try {
    db.close();
  } catch {
    // already closed
  }
}
