import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import { readSecretFile } from '../kek/secret-file.ts';
import type { StoredAuditEvent } from './audit-event.ts';
import type { AuditSink } from './audit-log.ts';

/**
 * Sends audit events to the control plane (ARCA_KP_AUDIT_URL): `POST` with
 * `authorization: Bearer <token from ARCA_KP_AUDIT_TOKEN_FILE>` and the JSON body
 * `{ "proxy": "<proxy id>", "events": [StoredAuditEvent...] }`, up to 500 events per batch, in
 * order. Any 2xx acknowledges the batch; anything else (or no answer within 10 s) is retried with
 * backoff by the audit log. The receiver deduplicates on (proxy, seq). The token file is read
 * again after a 401/403, so a rotated token is picked up without a restart.
 */
export class HttpAuditSink implements AuditSink {
  readonly name: string;
  private readonly url: string;
  private readonly tokenFile: string;
  private readonly proxyId: string;
  private readonly timeoutMs: number;
  private token: string | undefined;

  constructor(options: { url: string; tokenFile: string; proxyId: string; timeoutMs?: number }) {
    this.url = options.url;
    this.tokenFile = options.tokenFile;
    this.proxyId = options.proxyId;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.name = `http:${new URL(options.url).origin}${new URL(options.url).pathname}`;
  }

  /** Reads the token file now (start-up check: a missing or world-readable file is a configuration error). */
  async loadToken(): Promise<void> {
    const content = await readSecretFile(this.tokenFile, 'audit token file');
    try {
      const token = content.toString('utf8').trim();
      if (token === '' || /\s/.test(token)) throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `the audit token file ${this.tokenFile} must hold one token`);
      this.token = token;
    } finally {
      content.fill(0);
    }
  }

  async deliver(events: readonly StoredAuditEvent[]): Promise<void> {
    if (this.token === undefined) await this.loadToken();
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ proxy: this.proxyId, events }),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    await response.arrayBuffer().catch(() => undefined);
    if (response.status === 401 || response.status === 403) this.token = undefined;
    if (!response.ok) throw new Error(`the audit endpoint answered ${response.status}`);
  }
}
