import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { TokenError, TokenErrorCode } from './token-error.ts';

/**
 * Job tokens (docs/key-proxy.md §2): short-lived EdDSA JWTs the control plane issues for one job
 * of one agent on one store, bound to the agent's key by `cnf.jkt`.
 */
export const JOB_OPERATIONS = ['init', 'backup', 'restore', 'check', 'prune', 'rewrap'] as const;
export type JobOperation = (typeof JOB_OPERATIONS)[number];

export const JOB_TOKEN_TYPE = 'arca-job+jwt';
export const DEFAULT_KEY_PROXY_AUDIENCE = 'arca-key-proxy';
/** A job token may live at most this long: long jobs get a fresh token from the control plane. */
export const MAX_JOB_TOKEN_LIFETIME_S = 24 * 3600;
export const CLOCK_SKEW_S = 60;

export interface JobTokenClaims {
  iss: string;
  aud: string;
  sub: string;
  org: string;
  agent: string;
  store: string;
  job: string;
  ops: JobOperation[];
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  cnf: { jkt: string };
}

export interface IssueJobTokenInput {
  issuer: string;
  audience?: string;
  org: string;
  agent: string;
  store: string;
  job: string;
  ops: JobOperation[];
  /** thumbprint of the agent's public key (AgentIdentity.thumbprint) */
  agentKeyThumbprint: string;
  lifetimeSeconds: number;
  /** seconds since the epoch; defaults to now */
  now?: number;
}

export async function issueJobToken(input: IssueJobTokenInput, signingKey: { privateKey: KeyObject; kid: string }): Promise<string> {
  if (input.lifetimeSeconds <= 0 || input.lifetimeSeconds > MAX_JOB_TOKEN_LIFETIME_S) {
    throw new Error(`job token lifetime must be 1..${MAX_JOB_TOKEN_LIFETIME_S} seconds`);
  }
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const claims: JobTokenClaims = {
    iss: input.issuer,
    aud: input.audience ?? DEFAULT_KEY_PROXY_AUDIENCE,
    sub: `agent:${input.agent}`,
    org: input.org,
    agent: input.agent,
    store: input.store,
    job: input.job,
    ops: input.ops,
    iat: now,
    nbf: now,
    exp: now + input.lifetimeSeconds,
    jti: randomBytes(16).toString('base64url'),
    cnf: { jkt: input.agentKeyThumbprint },
  };
  // A compact JWS made with node:crypto's Ed25519 directly (like proofs of possession): jose's
  // WebCrypto signing costs the control plane ~1 ms of CPU per token, and it issues one or two per
  // leased job. Any JOSE library verifies the result (the key proxy uses jose's jwtVerify).
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ alg: 'EdDSA', typ: JOB_TOKEN_TYPE, kid: signingKey.kid })}.${encode(claims)}`;
  return `${signingInput}.${sign(null, Buffer.from(signingInput), signingKey.privateKey).toString('base64url')}`;
}

export type JwksSource = { jwks: JSONWebKeySet } | { jwksUrl: string; cacheMaxAgeMs?: number };

/**
 * Verifies job tokens offline against the issuer's JWKS (a file's content or a URL, cached).
 * Successful verifications are cached by token hash until the token expires, so a job's many
 * requests cost one signature check for the token (the per-request proof is always checked).
 */
export class JobTokenVerifier {
  private readonly getKey: JWTVerifyGetKey;
  private readonly issuer: string;
  private readonly audience: string;
  private readonly verified = new Map<string, JobTokenClaims>();
  private readonly maxCached: number;

  constructor(options: { issuer: string; audience?: string; source: JwksSource; maxCachedTokens?: number }) {
    this.issuer = options.issuer;
    this.audience = options.audience ?? DEFAULT_KEY_PROXY_AUDIENCE;
    this.maxCached = options.maxCachedTokens ?? 10_000;
    this.getKey = 'jwks' in options.source
      ? createLocalJWKSet(options.source.jwks)
      : createRemoteJWKSet(new URL(options.source.jwksUrl), { cacheMaxAge: options.source.cacheMaxAgeMs ?? 10 * 60_000 });
  }

  async verify(token: string, nowMs = Date.now()): Promise<JobTokenClaims> {
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const cached = this.verified.get(cacheKey);
    const nowS = Math.floor(nowMs / 1000);
    if (cached) {
      if (cached.exp + CLOCK_SKEW_S > nowS) return cached;
      this.verified.delete(cacheKey);
      throw new TokenError(TokenErrorCode.TokenExpired, 'the job token has expired: ask the control plane for a new one');
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        issuer: this.issuer,
        audience: this.audience,
        algorithms: ['EdDSA'],
        typ: JOB_TOKEN_TYPE,
        clockTolerance: CLOCK_SKEW_S,
        currentDate: new Date(nowMs),
        requiredClaims: ['iss', 'aud', 'sub', 'iat', 'exp', 'jti'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        throw new TokenError(TokenErrorCode.TokenExpired, 'the job token has expired: ask the control plane for a new one', { cause: err });
      }
      throw new TokenError(TokenErrorCode.TokenInvalid, `the job token was refused: ${describeJoseError(err)}`, { cause: err });
    }
    const claims = parseClaims(payload);
    if (this.verified.size >= this.maxCached) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(cacheKey, claims);
    return claims;
  }
}

function parseClaims(payload: Record<string, unknown>): JobTokenClaims {
  const str = (name: string): string => {
    const value = payload[name];
    if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
      throw new TokenError(TokenErrorCode.TokenInvalid, `the job token has no valid "${name}" claim`);
    }
    return value;
  };
  const num = (name: string): number => {
    const value = payload[name];
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new TokenError(TokenErrorCode.TokenInvalid, `the job token has no valid "${name}" claim`);
    return value;
  };
  const ops = payload.ops;
  if (!Array.isArray(ops) || ops.length === 0 || !ops.every((op): op is JobOperation => (JOB_OPERATIONS as readonly unknown[]).includes(op))) {
    throw new TokenError(TokenErrorCode.TokenInvalid, `the job token's "ops" claim must list operations among ${JOB_OPERATIONS.join(', ')}`);
  }
  const cnf = payload.cnf as { jkt?: unknown } | undefined;
  if (!cnf || typeof cnf.jkt !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(cnf.jkt)) {
    throw new TokenError(TokenErrorCode.TokenInvalid, 'the job token is not bound to an agent key (cnf.jkt)');
  }
  const store = str('store');
  if (!/^[0-9a-f]{64}$/.test(store)) throw new TokenError(TokenErrorCode.TokenInvalid, 'the job token\'s "store" claim is not a store ID');
  const iat = num('iat');
  const exp = num('exp');
  if (exp - iat > MAX_JOB_TOKEN_LIFETIME_S) throw new TokenError(TokenErrorCode.TokenInvalid, 'the job token lives longer than 24 hours');
  const aud = payload.aud;
  return {
    iss: str('iss'),
    aud: Array.isArray(aud) ? String(aud[0]) : String(aud),
    sub: str('sub'),
    org: str('org'),
    agent: str('agent'),
    store,
    job: str('job'),
    ops: [...new Set(ops)],
    iat,
    nbf: typeof payload.nbf === 'number' ? payload.nbf : iat,
    exp,
    jti: str('jti'),
    cnf: { jkt: cnf.jkt },
  };
}

/** jose's messages name the failed check (signature, audience, typ...) without echoing the token. */
export function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JOSEError) return err.message;
  return 'malformed token';
}
