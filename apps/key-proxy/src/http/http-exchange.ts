import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JobTokenClaims } from '@arca/crypto';
import type { AuditEvent } from '../audit/audit-event.ts';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';

/**
 * One request/response pair and what the proxy learned about it while handling it (the route's
 * template for metrics, the token's claims and key counts for the audit event and the log line).
 */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** Oversized bodies up to this size are read and discarded, so the client sees a clean 413. */
const DRAIN_LIMIT = 16 * 1024 * 1024;

export type AuditDraft = Pick<AuditEvent, 'operation'> & Partial<Omit<AuditEvent, 'operation' | 'time' | 'outcome' | 'requestId'>>;

export class HttpExchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly method: string;
  /** path without query string */
  readonly path: string;
  readonly startedAt = process.hrtime.bigint();
  /** route template ("POST /v1/stores/:storeId/keys"), or "unknown" */
  route = 'unknown';
  params: Record<string, string> = {};
  claims: JobTokenClaims | undefined;
  /** set by key routes: the audit event to record, completed with the outcome */
  audit: AuditDraft | undefined;
  /** the error code and message, when refused */
  errorCode: string | undefined;
  errorMessage: string | undefined;

  constructor(req: IncomingMessage, res: ServerResponse) {
    this.req = req;
    this.res = res;
    const given = req.headers['x-request-id'];
    this.requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    this.method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    this.path = q === -1 ? url : url.slice(0, q);
  }

  /** Reads the whole body; TOO_LARGE above `limit` bytes. */
  readBody(limit: number): Promise<Buffer> {
    const declared = Number(this.req.headers['content-length'] ?? NaN);
    const tooLarge = () =>
      new KeyProxyError(KeyProxyErrorCode.TooLarge, `the request body is larger than ${limit} bytes: send fewer keys per request (at most 10,000)`);
    if (Number.isFinite(declared) && declared > DRAIN_LIMIT) {
      this.res.setHeader('connection', 'close');
      return Promise.reject(tooLarge());
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      this.req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (over) {
          if (size > DRAIN_LIMIT) this.req.destroy();
          return;
        }
        if (size > limit) {
          over = true;
          chunks.length = 0;
          this.res.setHeader('connection', 'close');
          return;
        }
        chunks.push(chunk);
      });
      this.req.on('end', () => (over ? reject(tooLarge()) : resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))));
      this.req.on('error', (err) => reject(over ? tooLarge() : err));
      this.req.on('close', () => {
        if (!this.req.complete) reject(over ? tooLarge() : new KeyProxyError(KeyProxyErrorCode.InvalidRequest, 'the request body was cut short'));
      });
    });
  }

  sendJson(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.sendText(status, typeof body === 'string' ? body : JSON.stringify(body), 'application/json; charset=utf-8', headers);
  }

  sendText(status: number, text: string, contentType: string, headers: Record<string, string> = {}): void {
    if (this.res.headersSent) return;
    this.res.writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-request-id': this.requestId,
      ...headers,
    });
    this.res.end(text);
  }

  sendError(err: KeyProxyError, extra: { fields?: Array<{ path: string; message: string }> } = {}): void {
    this.errorCode = err.code;
    this.errorMessage = err.message;
    const headers: Record<string, string> = {};
    if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
    if (err.httpStatus === 401) headers['www-authenticate'] = 'DPoP algs="EdDSA"';
    this.sendJson(err.httpStatus, { error: { code: err.code, message: err.message, ...(extra.fields ? { fields: extra.fields } : {}) } }, headers);
  }

  get status(): number {
    return this.res.statusCode;
  }

  elapsedMs(): number {
    return Number(process.hrtime.bigint() - this.startedAt) / 1e6;
  }
}
