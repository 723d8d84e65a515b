import { createHash, randomBytes } from 'node:crypto';
import { EmbeddedJWK, jwtVerify, SignJWT } from 'jose';
import { jwkThumbprint, type AgentIdentity, type Ed25519PublicJwk } from './agent-identity.ts';
import { describeJoseError } from './job-token.ts';
import type { ReplayCache } from './replay-cache.ts';
import { TokenError, TokenErrorCode } from './token-error.ts';

/**
 * Per-request proof of possession of the agent key (docs/key-proxy.md §2, after RFC 9449 DPoP),
 * extended with `bdh`, a hash of the request body, so a proof also authenticates what was asked.
 */
export const PROOF_TYPE = 'dpop+jwt';
/** How far a proof's iat may be from the verifier's clock. */
export const PROOF_WINDOW_S = 60;

export interface ProofRequest {
  method: string;
  /** absolute request URL; query and fragment are ignored */
  url: string;
  token: string;
  body: Uint8Array | string;
}

export function sha256Base64url(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('base64url');
}

function htuOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

export async function createProof(identity: AgentIdentity, request: ProofRequest, nowS = Math.floor(Date.now() / 1000)): Promise<string> {
  return new SignJWT({
    htm: request.method.toUpperCase(),
    htu: htuOf(request.url),
    ath: sha256Base64url(request.token),
    bdh: sha256Base64url(request.body),
  })
    .setProtectedHeader({ alg: 'EdDSA', typ: PROOF_TYPE, jwk: identity.publicJwk })
    .setIssuedAt(nowS)
    .setJti(randomBytes(16).toString('base64url'))
    .sign(identity.privateKey);
}

/**
 * Verifies a proof for a request carrying `token` bound to `expectedJkt`. `url` is the URL as the
 * verifier sees it (its configured public base URL + path), so a proof made for another host or
 * path is refused.
 */
export async function verifyProof(
  proof: string,
  request: ProofRequest & { expectedJkt: string; replayCache: ReplayCache },
  nowMs = Date.now(),
): Promise<void> {
  let payload: Record<string, unknown>;
  let jwk: Ed25519PublicJwk;
  try {
    const result = await jwtVerify(proof, EmbeddedJWK, { algorithms: ['EdDSA'], typ: PROOF_TYPE, currentDate: new Date(nowMs) });
    payload = result.payload;
    jwk = result.protectedHeader.jwk as unknown as Ed25519PublicJwk;
  } catch (err) {
    throw new TokenError(TokenErrorCode.ProofInvalid, `the proof of possession was refused: ${describeJoseError(err)}`, { cause: err });
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string' || jwkThumbprint(jwk) !== request.expectedJkt) {
    throw new TokenError(TokenErrorCode.ProofInvalid, 'the proof is not signed by the key the job token is bound to');
  }
  const mismatch = (claim: string, expected: string) => payload[claim] !== expected;
  if (mismatch('htm', request.method.toUpperCase()) || mismatch('htu', htuOf(request.url))) {
    throw new TokenError(TokenErrorCode.ProofInvalid, 'the proof was made for another request (method or URL)');
  }
  if (mismatch('ath', sha256Base64url(request.token))) throw new TokenError(TokenErrorCode.ProofInvalid, 'the proof was made for another job token');
  if (mismatch('bdh', sha256Base64url(request.body))) throw new TokenError(TokenErrorCode.ProofInvalid, 'the proof does not match the request body');
  const iat = payload.iat;
  const nowS = nowMs / 1000;
  if (typeof iat !== 'number' || Math.abs(nowS - iat) > PROOF_WINDOW_S) {
    throw new TokenError(TokenErrorCode.ProofInvalid, 'the proof is too old or from the future: check the agent\'s clock');
  }
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti.length < 16 || jti.length > 64) throw new TokenError(TokenErrorCode.ProofInvalid, 'the proof has no valid jti');
  if (!request.replayCache.checkAndRemember(`${request.expectedJkt}:${jti}`, nowMs)) {
    throw new TokenError(TokenErrorCode.ProofReplayed, 'this request was already made once (replayed proof)');
  }
}
