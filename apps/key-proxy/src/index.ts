/** The key proxy as a library: start it in-process (tests, embedded default), or run its CLI. */
export { startKeyProxy, type RunningKeyProxy, type StartKeyProxyOptions } from './key-proxy-app.ts';
export { loadKeyProxyConfig, KEY_PROXY_ENV_HELP, type KeyProxyConfig, type ProviderConfig } from './config/key-proxy-config.ts';
export { runKeyProxyCli } from './cli/key-proxy-cli.ts';
export { ExitCode as KeyProxyExitCode } from './cli/exit-codes.ts';
export { KeyProxyError, KeyProxyErrorCode, isKeyProxyError } from './errors/key-proxy-error.ts';
export { encodeEnvelope, decodeEnvelope, type Envelope } from './keys/envelope.ts';
export type { KekProvider, KekContext, WrappedKey, KekProviderName } from './kek/kek-provider.ts';
export { JsonLogger } from './logging/json-logger.ts';
export type { AuditEvent, StoredAuditEvent } from './audit/audit-event.ts';
export { KEY_PROXY_VERSION } from './version.ts';
