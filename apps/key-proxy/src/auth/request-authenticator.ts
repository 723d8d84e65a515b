import type { IncomingHttpHeaders } from 'node:http';
import { TokenError, verifyProof, type JobTokenClaims, type JobTokenVerifier, type ReplayCache } from '@arca/crypto';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';

/**
 * Authenticates a request (docs/key-proxy.md §2): `Authorization: DPoP <job token>` verified
 * against the control plane's JWKS (cached per token by the verifier), then the `DPoP` proof:
 * signed by the key the token is bound to, for this method, this URL as the agents see it (the
 * configured public base URL + the path), this token and this exact body, fresh, and never seen
 * before (replay cache). Returns the token's claims.
 */
const MAX_CREDENTIAL_LENGTH = 8192;

export interface RequestToAuthenticate {
  method: string;
  /** request path without query, as received */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class RequestAuthenticator {
  private readonly verifier: JobTokenVerifier;
  private readonly replayCache: ReplayCache;
  private readonly publicBaseUrl: () => string;

  constructor(options: { verifier: JobTokenVerifier; replayCache: ReplayCache; publicBaseUrl: () => string }) {
    this.verifier = options.verifier;
    this.replayCache = options.replayCache;
    this.publicBaseUrl = options.publicBaseUrl;
  }

  async authenticate(request: RequestToAuthenticate): Promise<JobTokenClaims> {
    const token = this.token(request.headers);
    let claims: JobTokenClaims;
    try {
      claims = await this.verifier.verify(token);
    } catch (err) {
      throw fromTokenError(err);
    }
    const proof = request.headers.dpop;
    if (typeof proof !== 'string' || proof.length === 0) {
      throw new KeyProxyError(
        KeyProxyErrorCode.ProofInvalid,
        'this request has no DPoP proof: a job token is only accepted with a fresh proof signed by the agent key it is bound to',
      );
    }
    if (proof.length > MAX_CREDENTIAL_LENGTH) throw new KeyProxyError(KeyProxyErrorCode.ProofInvalid, 'the DPoP proof is too long');
    try {
      await verifyProof(proof, {
        method: request.method,
        url: this.publicBaseUrl() + request.path,
        token,
        body: request.body,
        expectedJkt: claims.cnf.jkt,
        replayCache: this.replayCache,
      });
    } catch (err) {
      throw fromTokenError(err);
    }
    return claims;
  }

  private token(headers: IncomingHttpHeaders): string {
    const header = headers.authorization;
    const m = typeof header === 'string' ? /^DPoP +(\S+)$/i.exec(header.trim()) : null;
    if (!m) {
      throw new KeyProxyError(
        KeyProxyErrorCode.TokenInvalid,
        'send the job token as "Authorization: DPoP <job token>" with a "DPoP: <proof>" header',
      );
    }
    if (m[1]!.length > MAX_CREDENTIAL_LENGTH) throw new KeyProxyError(KeyProxyErrorCode.TokenInvalid, 'the job token is too long');
    return m[1]!;
  }
}

function fromTokenError(err: unknown): KeyProxyError {
  if (err instanceof TokenError) return new KeyProxyError(err.code, err.message, { cause: err });
  if (err instanceof KeyProxyError) return err;
  // e.g. the JWKS URL is unreachable: not the agent's fault, and retryable
  return new KeyProxyError(
    KeyProxyErrorCode.TokenInvalid,
    `the job token could not be verified: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err },
  );
}
