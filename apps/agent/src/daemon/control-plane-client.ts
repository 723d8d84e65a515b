import { createProof, type AgentIdentity } from '@arca/crypto';
import {
  AGENT_API_PATHS,
  AGENT_AUTH_SCHEME,
  agentApiErrorSchema,
  agentHeartbeatResponseSchema,
  enrollResponseSchema,
  inventoryResponseSchema,
  jobCompleteResponseSchema,
  jobHeartbeatResponseSchema,
  jobTokenResponseSchema,
  leaseResponseSchema,
  LEASE_MAX_WAIT_SECONDS,
  type AgentHeartbeatRequest,
  type AgentHeartbeatResponse,
  type EnrollRequest,
  type EnrollResponse,
  type InventoryRequest,
  type JobCompleteRequest,
  type JobCompleteResponse,
  type JobHeartbeatRequest,
  type JobHeartbeatResponse,
  type JobTokenResponse,
  type LeaseResponse,
} from '@arca/contracts';
import type { z } from 'zod';
import { backoffDelay, DEFAULT_BACKOFF, sleep, type BackoffPolicy } from './backoff.ts';

/**
 * The agent's client for the control plane's `/agent/v1` (docs/fleet.md §2-3). Every request
 * carries a fresh proof of possession of the agent key (createProof over method, URL, the exact
 * body bytes and the credential: the enrollment token for `enroll`, else the agent credential,
 * which is also sent as `Authorization: Agent …`). Transient failures (network, 408, 429, 5xx) are
 * retried with exponential backoff and full jitter until the call's `signal` aborts or its
 * attempts are used up; every other answer is final. Errors never carry the enrollment token.
 */
export class ControlPlaneRequestError extends Error {
  /** HTTP status, 0 for a network failure */
  readonly status: number;
  /** the control plane's error code (AGENT_UNAUTHENTICATED, LEASE_LOST, …), NETWORK, PROTOCOL or HTTP_<status> */
  readonly code: string;
  readonly retryable: boolean;

  constructor(status: number, code: string, message: string, retryable: boolean, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ControlPlaneRequestError';
    this.status = status;
    this.code = code;
    this.retryable = retryable;
  }
}

export interface ControlPlaneClientOptions {
  /** the control plane's base URL (origin, optionally a path prefix) */
  url: string;
  identity: AgentIdentity;
  /** `arca_agt_…`, once enrolled */
  credential?: string;
  backoff?: BackoffPolicy;
  /** per attempt (long polls get their wait time on top) */
  requestTimeoutMs?: number;
  /** told about every failed attempt that will be retried */
  onRetry?: (what: string, attempt: number, delayMs: number, err: ControlPlaneRequestError) => void;
}

export interface CallOptions {
  /** stop retrying (and abort the request in flight) */
  signal?: AbortSignal;
  /** attempts in all (default: unlimited, until `signal` aborts) */
  maxAttempts?: number;
  /** extra time allowed for the answer (long polls) */
  extraTimeoutMs?: number;
}

const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
const DEFAULT_TIMEOUT_MS = 30_000;

export function normalizeControlPlaneUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ControlPlaneRequestError(0, 'INVALID_URL', `"${url.slice(0, 200)}" is not a control plane URL (use https://host[:port])`, false);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ControlPlaneRequestError(0, 'INVALID_URL', 'the control plane URL must use https', false);
  if (parsed.username || parsed.password || parsed.search || parsed.hash) {
    throw new ControlPlaneRequestError(0, 'INVALID_URL', 'the control plane URL must not contain credentials, a query or a fragment', false);
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

export class ControlPlaneClient {
  readonly url: string;
  private readonly identity: AgentIdentity;
  private credential: string | undefined;
  private readonly backoff: BackoffPolicy;
  private readonly timeoutMs: number;
  private readonly onRetry: ControlPlaneClientOptions['onRetry'];

  constructor(options: ControlPlaneClientOptions) {
    this.url = normalizeControlPlaneUrl(options.url);
    this.identity = options.identity;
    this.credential = options.credential;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.onRetry = options.onRetry;
  }

  async enroll(request: EnrollRequest, options: CallOptions = {}): Promise<EnrollResponse> {
    const answer = await this.call('POST', AGENT_API_PATHS.enroll, request, enrollResponseSchema, 'enrollment', { ...options, proofToken: request.token });
    this.credential = answer.credential;
    return answer;
  }

  heartbeat(request: AgentHeartbeatRequest, options: CallOptions = {}): Promise<AgentHeartbeatResponse> {
    return this.call('POST', AGENT_API_PATHS.heartbeat, request, agentHeartbeatResponseSchema, 'the heartbeat', options);
  }

  inventory(request: InventoryRequest, options: CallOptions = {}): Promise<{ accepted: number }> {
    return this.call('PUT', AGENT_API_PATHS.inventory, request, inventoryResponseSchema, 'the inventory', options);
  }

  lease(slots: number, waitSeconds: number, options: CallOptions = {}): Promise<LeaseResponse> {
    const wait = Math.min(LEASE_MAX_WAIT_SECONDS, Math.max(0, waitSeconds));
    return this.call('POST', AGENT_API_PATHS.lease, { slots, waitSeconds: wait }, leaseResponseSchema, 'leasing jobs', { ...options, extraTimeoutMs: wait * 1000 });
  }

  jobHeartbeat(jobId: string, request: JobHeartbeatRequest, options: CallOptions = {}): Promise<JobHeartbeatResponse> {
    return this.call('POST', AGENT_API_PATHS.jobHeartbeat(jobId), request, jobHeartbeatResponseSchema, `the heartbeat of job ${jobId}`, options);
  }

  jobToken(jobId: string, attempt: number, options: CallOptions = {}): Promise<JobTokenResponse> {
    return this.call('POST', AGENT_API_PATHS.jobToken(jobId), { attempt }, jobTokenResponseSchema, `a fresh token for job ${jobId}`, options);
  }

  complete(jobId: string, request: JobCompleteRequest, options: CallOptions = {}): Promise<JobCompleteResponse> {
    return this.call('POST', AGENT_API_PATHS.jobComplete(jobId), request, jobCompleteResponseSchema, `the result of job ${jobId}`, options);
  }

  private async call<S extends z.ZodType>(
    method: 'POST' | 'PUT',
    path: string,
    body: unknown,
    schema: S,
    what: string,
    options: CallOptions & { proofToken?: string },
  ): Promise<z.infer<S>> {
    const url = `${this.url}${path}`;
    const bytes = Buffer.from(JSON.stringify(body));
    for (let attempt = 1; ; attempt++) {
      let failure: ControlPlaneRequestError;
      try {
        return await this.send(method, url, bytes, schema, what, options);
      } catch (err) {
        if (!(err instanceof ControlPlaneRequestError)) throw err;
        failure = err;
      }
      if (!failure.retryable || options.signal?.aborted || (options.maxAttempts !== undefined && attempt >= options.maxAttempts)) throw failure;
      const delay = backoffDelay(attempt, this.backoff);
      this.onRetry?.(what, attempt, delay, failure);
      await sleep(delay, options.signal);
      if (options.signal?.aborted) throw failure;
    }
  }

  private async send<S extends z.ZodType>(method: string, url: string, body: Buffer, schema: S, what: string, options: CallOptions & { proofToken?: string }): Promise<z.infer<S>> {
    const token = options.proofToken ?? this.credential;
    if (!token) throw new ControlPlaneRequestError(0, 'NOT_ENROLLED', 'this agent is not enrolled', false);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      dpop: await createProof(this.identity, { method, url, token, body }),
    };
    if (!options.proofToken) headers.authorization = `${AGENT_AUTH_SCHEME} ${token}`;
    const timeout = AbortSignal.timeout(this.timeoutMs + (options.extraTimeoutMs ?? 0));
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body, signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout });
      text = await response.text();
    } catch (err) {
      const reason = options.signal?.aborted ? 'aborted' : networkReason(err);
      throw new ControlPlaneRequestError(0, 'NETWORK', `the control plane at ${this.url} cannot be reached (${reason}; ${what})`, true, err);
    }
    if (response.status >= 200 && response.status < 300) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new ControlPlaneRequestError(response.status, 'PROTOCOL', `the control plane sent an answer to ${what} that is not JSON`, false);
      }
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        throw new ControlPlaneRequestError(response.status, 'PROTOCOL', `the control plane's answer to ${what} does not follow the agent API (${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? ''}); check that agent and control plane versions are compatible`, false);
      }
      return parsed.data as z.infer<S>;
    }
    const error = parseError(text);
    const code = error?.code ?? `HTTP_${response.status}`;
    const message = error?.message ? clean(error.message) : `HTTP ${response.status}`;
    throw new ControlPlaneRequestError(response.status, code, `the control plane refused ${what}: ${code} (${message})`, RETRYABLE_STATUS.has(response.status));
  }
}

function parseError(text: string): { code: string; message: string } | undefined {
  try {
    const parsed = agentApiErrorSchema.safeParse(JSON.parse(text));
    if (parsed.success && /^[A-Z0-9_]{1,64}$/.test(parsed.data.error.code)) return parsed.data.error;
  } catch {
    // not JSON: a proxy's error page
  }
  return undefined;
}

function clean(text: string): string {
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, ' ').slice(0, 500);
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return clean(cause.code);
  if ((err as { name?: string } | undefined)?.name === 'TimeoutError') return 'timed out';
  return err instanceof Error ? clean(err.message).slice(0, 120) : 'network error';
}
