import type { AuditLog } from '../audit/audit-log.ts';
import type { RequestAuthenticator } from '../auth/request-authenticator.ts';
import type { RequestAuthorizer } from '../auth/request-authorizer.ts';
import type { KekProvider } from '../kek/kek-provider.ts';
import type { MasterKeyCache } from '../keys/master-key-cache.ts';
import type { MasterKeyRegistry } from '../keys/master-key-registry.ts';
import type { RateLimiter } from '../limits/rate-limiter.ts';
import type { JsonLogger } from '../logging/json-logger.ts';
import type { KeyProxyMetrics } from '../metrics/key-proxy-metrics.ts';
import type { ReadinessProbe } from './readiness-probe.ts';

/** What the routes work with; assembled once by startKeyProxy. */
export interface KeyProxyServices {
  logger: JsonLogger;
  metrics: KeyProxyMetrics;
  authenticator: RequestAuthenticator;
  authorizer: RequestAuthorizer;
  rateLimiter: RateLimiter;
  cache: MasterKeyCache;
  /** instrumented: deadlines, metrics, normalized errors */
  provider: KekProvider;
  masterKeys: MasterKeyRegistry;
  audit: AuditLog;
  readiness: ReadinessProbe;
}
