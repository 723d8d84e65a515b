import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProof, type AgentIdentity } from '@arca/crypto';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';

/**
 * The agent's HTTP client for the key proxy (docs/key-proxy.md §2-3). Every request carries the
 * job token (`Authorization: DPoP ...`) and a fresh proof of possession of the agent key over the
 * exact body bytes sent. Overload (429, honouring retry-after), an unavailable KEK provider (503)
 * and network errors are retried with exponential backoff and full jitter for a bounded time.
 * Errors never contain the token, a proof, the envelope or key material.
 */

export const DEFAULT_RETRY_BUDGET_MS = 60_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** 10,000 keys are ~460 KB of JSON: anything far larger is not a key proxy answer */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Connection errors after which the request certainly did not reach the proxy. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** What the agent can read from a job token without verifying it (the key proxy verifies it). */
export interface JobTokenInfo {
  store: string;
  org: string | undefined;
  agent: string | undefined;
  ops: string[];
  exp: number | undefined;
  /** thumbprint of the agent key the token is bound to (cnf.jkt) */
  jkt: string | undefined;
}

/** Decode a job token's payload without verifying it. Throws when it is not a job token for a store. */
export function decodeJobToken(token: string): JobTokenInfo {
  const invalid = (why: string) =>
    new ArcaError(ArcaErrorCode.InvalidArgument, `the job token is not valid: ${why}`, {
      hint: 'give the token exactly as the control plane issued it (a file with --key-proxy-token-file, or ARCA_KEY_PROXY_TOKEN)',
    });
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) throw invalid('it is not a JWT');
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid('its payload is not JSON');
  }
  if (typeof payload !== 'object' || payload === null) throw invalid('its payload is not an object');
  const store = payload.store;
  if (typeof store !== 'string' || !/^[0-9a-f]{64}$/.test(store)) throw invalid('it names no store ID (64 hex digits)');
  const str = (v: unknown) => (typeof v === 'string' && /^[\x20-\x7e]{1,200}$/.test(v) ? v : undefined);
  const cnf = payload.cnf as { jkt?: unknown } | undefined;
  return {
    store,
    org: str(payload.org),
    agent: str(payload.agent),
    ops: Array.isArray(payload.ops) ? payload.ops.map(str).filter((o): o is string => o !== undefined) : [],
    exp: typeof payload.exp === 'number' ? payload.exp : undefined,
    jkt: typeof cnf === 'object' && cnf !== null ? str(cnf.jkt) : undefined,
  };
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * The canonical form of a key proxy base URL: origin + path, no trailing slash. Keys travel in the
 * response bodies, so plain http is accepted only to a loopback address unless `allowHttp`.
 */
export function normalizeKeyProxyUrl(url: string, options: { allowHttp?: boolean } = {}): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `"${url.slice(0, 200)}" is not a key proxy URL`, { hint: 'use https://host[:port][/path]' });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `the key proxy URL must use https, not ${parsed.protocol.replace(/:$/, '')}`, { hint: 'use https://host[:port][/path]' });
  }
  if (parsed.username || parsed.password || parsed.search || parsed.hash) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'the key proxy URL must not contain credentials, a query or a fragment', { hint: 'use https://host[:port][/path]' });
  }
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname) && !options.allowHttp) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, `refusing plain http to ${parsed.host}: the key proxy sends keys in its responses`, {
      hint: 'use https (plain http is accepted only to localhost / 127.0.0.1 / [::1]; ARCA_KEY_PROXY_ALLOW_HTTP=1 overrides this for test labs)',
    });
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

/** The key proxy answered with an error: `proxyCode` is its code (docs/key-proxy.md §3), or HTTP_<status>. */
export class KeyProxyRequestError extends ArcaError {
  readonly proxyCode: string;
  readonly status: number;

  constructor(code: ArcaErrorCode, proxyCode: string, status: number, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
    this.proxyCode = proxyCode;
    this.status = status;
  }
}

export interface KeyProxyClientOptions {
  /** the key proxy's base URL (normalized with normalizeKeyProxyUrl) */
  url: string;
  token: string;
  identity: AgentIdentity;
  /** how long to keep retrying an unreachable or overloaded proxy, per request (default 60 s) */
  retryBudgetMs?: number;
  /** per attempt: how long the connection may stay silent (default 60 s) */
  requestTimeoutMs?: number;
}

interface HttpAnswer {
  status: number;
  retryAfter: string | undefined;
  text: string;
}

/** Terminal-safe text from the proxy: printable ASCII and common Unicode only, bounded. */
function clean(text: unknown, max = 1000): string {
  return String(text)
    // eslint-disable-next-line no-control-regex -- removing control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, ' ')
    .slice(0, max);
}

function networkReason(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return clean(code, 40);
  if (err instanceof Error) return clean(err.message, 120);
  return 'network error';
}

/** retry-after: delay-seconds or an HTTP date; undefined when absent or unparsable. */
function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export class KeyProxyClient {
  readonly url: string;
  private token: string;
  private readonly identity: AgentIdentity;
  private readonly retryBudgetMs: number;
  private readonly requestTimeoutMs: number;
  private tokenInfo: JobTokenInfo | undefined;
  private readonly httpModule: typeof http | typeof https;
  /** keep-alive connections, reused across requests (node:http costs about half of fetch per request) */
  private readonly agent: http.Agent;

  constructor(options: KeyProxyClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.identity = options.identity;
    this.retryBudgetMs = options.retryBudgetMs ?? DEFAULT_RETRY_BUDGET_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const secure = new URL(this.url).protocol === 'https:';
    this.httpModule = secure ? https : http;
    this.agent = secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    try {
      this.tokenInfo = decodeJobToken(options.token);
    } catch {
      this.tokenInfo = undefined; // the proxy will say what is wrong with it
    }
  }

  /**
   * Use a fresh job token for later requests (the agent daemon refreshes a long job's token before
   * it expires). It must be for the same store: keys already issued stay valid.
   */
  setToken(token: string): void {
    const info = decodeJobToken(token);
    if (this.tokenInfo && info.store !== this.tokenInfo.store) {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `the new job token is for store ${info.store}, not ${this.tokenInfo.store}`);
    }
    this.token = token;
    this.tokenInfo = info;
  }

  /** Close the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * POST a JSON body; returns the parsed JSON response. Retries transient failures; with
   * `idempotent: false` a request that may have reached the proxy is not sent again.
   */
  async post(path: string, body: unknown, what: string, options: { idempotent?: boolean } = {}): Promise<unknown> {
    const url = `${this.url}${path}`;
    const bytes = Buffer.from(JSON.stringify(body));
    const started = Date.now();
    let attempt = 0;
    for (;;) {
      attempt++;
      let transient: { delayMs?: number; error: () => ArcaError };
      try {
        const proof = await createProof(this.identity, { method: 'POST', url, token: this.token, body: bytes });
        const answer = await this.send(url, bytes, proof);
        if (answer.status >= 200 && answer.status < 300) {
          try {
            return JSON.parse(answer.text) as unknown;
          } catch {
            throw this.protocolError(what, 'the response is not JSON');
          }
        }
        const { code, message } = parseErrorBody(answer.text);
        if (answer.status === 429 || answer.status === 503 || (answer.status === 504 && code === undefined)) {
          const proxyCode = code ?? `HTTP_${answer.status}`;
          transient = {
            ...(answer.status === 429 ? { delayMs: retryAfterMs(answer.retryAfter) ?? 1000 } : {}),
            error: () => this.unavailable(what, answer.status === 429 ? 'kept rate-limiting this agent' : `kept answering ${proxyCode}${message ? ` (${message})` : ''}`, proxyCode, answer.status),
          };
        } else {
          throw this.refused(what, answer.status, code, message);
        }
      } catch (err) {
        if (err instanceof ArcaError) throw err;
        const reason = networkReason(err);
        const error = () => this.unavailable(what, `cannot be reached (${reason})`, 'NETWORK', 0, err);
        if (options.idempotent === false && !NOT_SENT.has(reason)) {
          const e = error();
          throw new KeyProxyRequestError(ArcaErrorCode.KeyProxyUnavailable, 'NETWORK', 0, `the connection to the key proxy at ${this.url} failed (${reason}; ${what})`, {
            hint: `${e.hint ?? ''}; this request is not repeated automatically, as it may have reached the proxy`,
            cause: err,
          });
        }
        transient = { error };
      }
      const elapsed = Date.now() - started;
      const backoff = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
      const delay = transient.delayMs !== undefined ? transient.delayMs + Math.random() * 100 : backoff;
      if (elapsed + delay > this.retryBudgetMs) throw transient.error();
      await sleep(delay);
    }
  }

  private send(url: string, body: Buffer, proof: string): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = this.httpModule.request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          timeout: this.requestTimeoutMs,
          headers: {
            authorization: `DPoP ${this.token}`,
            dpop: proof,
            'content-type': 'application/json',
            'content-length': body.length,
            accept: 'application/json',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(Object.assign(new Error('response too large'), { code: 'ERESPONSETOOLARGE' }));
            else chunks.push(chunk);
          });
          res.on('error', reject);
          res.on('end', () => {
            const retryAfter = res.headers['retry-after'];
            resolve({ status: res.statusCode ?? 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, text: Buffer.concat(chunks).toString('utf8') });
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  private protocolError(what: string, why: string): ArcaError {
    return new KeyProxyRequestError(ArcaErrorCode.KeyProxyProtocol, 'PROTOCOL', 200, `the key proxy at ${this.url} sent an invalid answer to ${what}: ${why}`, {
      hint: 'check that --key-proxy / ARCA_KEY_PROXY_URL points at an Arca key proxy of a compatible version',
    });
  }

  /** For callers that validate response shapes. */
  invalidResponse(what: string, why: string): ArcaError {
    return this.protocolError(what, why);
  }

  private unavailable(what: string, detail: string, proxyCode: string, status: number, cause?: unknown): ArcaError {
    const seconds = Math.round(this.retryBudgetMs / 1000);
    return new KeyProxyRequestError(ArcaErrorCode.KeyProxyUnavailable, proxyCode, status, `the key proxy at ${this.url} ${detail}, retried for ${seconds} s (${what})`, {
      hint:
        'check that the key proxy is running and reachable from this machine (GET /healthz, /readyz), then run the command again; ' +
        'what is already in the store is intact, and an interrupted backup resumes (ARCA_KEY_PROXY_RETRY_SECONDS sets how long to retry)',
      ...(cause === undefined ? {} : { cause }),
    });
  }

  private refused(what: string, status: number, code: string | undefined, message: string | undefined): ArcaError {
    const proxyCode = code ?? `HTTP_${status}`;
    const detail = message ?? (code === undefined ? 'the answer is not an Arca key proxy error; is the URL right?' : '');
    return new KeyProxyRequestError(
      ArcaErrorCode.KeyProxyRefused,
      proxyCode,
      status,
      `the key proxy refused ${what} (${proxyCode}${detail ? `: ${detail}` : ''})`,
      { hint: this.hintFor(proxyCode) },
    );
  }

  private hintFor(code: string): string {
    const t = this.tokenInfo;
    const store = t?.store ?? 'STORE_ID';
    switch (code) {
      case 'TOKEN_EXPIRED':
        return 'the job token has expired: get a new job token from the control plane and run the command again';
      case 'TOKEN_INVALID':
        return 'get a new job token from the control plane; if that fails too, the key proxy does not trust this control plane (issuer, audience or JWKS)';
      case 'PROOF_INVALID':
        return (
          `the request was not signed with the agent key the job token is bound to: use that key (--agent-key / ARCA_AGENT_KEY_FILE), ` +
          `or get a token for this one (thumbprint ${this.identity.thumbprint}${t?.jkt && t.jkt !== this.identity.thumbprint ? `; the token is bound to ${t.jkt}` : ''}); ` +
          'also check this machine\'s clock'
        );
      case 'PROOF_REPLAYED':
        return 'run the command again; if it persists, check this machine\'s clock';
      case 'OPERATION_NOT_ALLOWED':
        return `the job token allows only: ${t?.ops.length ? t.ops.join(', ') : 'other operations'}; ask the control plane for a token for this operation`;
      case 'STORE_MISMATCH':
        return `the job token is for store ${store}: use a token issued for this store`;
      case 'GRANT_REQUIRED':
        return (
          'this agent is not approved for this store: ask the key custodian to run ' +
          `\`arca-key-proxy grant approve --org ${t?.org ?? 'ORG'} --store ${store} --agent-key-thumbprint ${this.identity.thumbprint}\`, then run the command again`
        );
      case 'MASTER_KEY_EXISTS':
        return `the key proxy already created a master key for store ${store}: a new store needs a new store ID (ask the control plane for a new init token)`;
      case 'PROVIDER_ERROR':
        return 'the key proxy\'s KEK provider refused to unwrap the master key: the envelope in the store\'s config is damaged or belongs to another store or organization; contact the key proxy\'s operator';
      case 'RATE_LIMITED':
        return 'the key proxy is overloaded: run the command again later';
      case 'TOO_LARGE':
      case 'INVALID_REQUEST':
        return 'arca and the key proxy disagree on the protocol: check that both are compatible versions (ARCA_DEBUG=1 shows details)';
      default:
        return 'check --key-proxy / ARCA_KEY_PROXY_URL and the key proxy\'s logs';
    }
  }
}

function parseErrorBody(text: string): { code: string | undefined; message: string | undefined } {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = typeof parsed.error?.code === 'string' && /^[A-Z_]{1,40}$/.test(parsed.error.code) ? parsed.error.code : undefined;
    const message = typeof parsed.error?.message === 'string' ? clean(parsed.error.message) : undefined;
    return { code, message };
  } catch {
    return { code: undefined, message: undefined };
  }
}
