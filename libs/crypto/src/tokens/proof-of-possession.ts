import { createHash, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { jwkThumbprint, type AgentIdentity, type Ed25519PublicJwk } from './agent-identity.ts';
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

const PROOF_HEADER_PREFIX = { alg: 'EdDSA', typ: PROOF_TYPE } as const;

/**
 * Proofs are made and checked with node:crypto's synchronous Ed25519 directly rather than through
 * jose (WebCrypto): one is made and one is checked per key-proxy request, and the asynchronous
 * WebCrypto jobs cost the proxy ~1.5 ms of CPU per request (profiled), a third of a backup's
 * key-issuing overhead. The format is the standard compact JWS; jose still verifies job tokens.
 */
export async function createProof(identity: AgentIdentity, request: ProofRequest, nowS = Math.floor(Date.now() / 1000)): Promise<string> {
  const header = Buffer.from(JSON.stringify({ ...PROOF_HEADER_PREFIX, jwk: identity.publicJwk })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({
    htm: request.method.toUpperCase(),
    htu: htuOf(request.url),
    ath: sha256Base64url(request.token),
    bdh: sha256Base64url(request.body),
    iat: nowS,
    jti: randomBytes(16).toString('base64url'),
  })).toString('base64url');
  const signingInput = `${header}.${payload}`;
  return `${signingInput}.${sign(null, Buffer.from(signingInput), identity.privateKey).toString('base64url')}`;
}

/** Agent public keys seen recently, parsed once (a job sends many requests with the same key). */
const publicKeys = new Map<string, KeyObject>();
const MAX_CACHED_PUBLIC_KEYS = 10_000;

function publicKeyFor(jwk: Ed25519PublicJwk): KeyObject {
  let key = publicKeys.get(jwk.x);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
    if (publicKeys.size >= MAX_CACHED_PUBLIC_KEYS) publicKeys.delete(publicKeys.keys().next().value!);
    publicKeys.set(jwk.x, key);
  }
  return key;
}

/**
 * Ed25519 verification in libuv's thread pool (crypto.verify with a callback): the signature check
 * is the largest single cost of a verifier's request (~100 µs of a heartbeat's ~350 µs on the
 * 2-core build machine), and off the event loop it runs on another core while the loop serves the
 * next request. Not WebCrypto: its promise machinery costs more than the check itself.
 */
function verifyOffThread(data: Buffer, key: KeyObject, signature: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    verify(null, data, key, signature, (err, ok) => (err ? reject(err) : resolve(ok)));
  });
}

function invalid(message: string, cause?: unknown): TokenError {
  return new TokenError(TokenErrorCode.ProofInvalid, message, cause === undefined ? {} : { cause });
}

function decodeJsonSegment(segment: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch (err) {
    throw invalid(`the proof of possession was refused: its ${what} is not valid JSON`, err);
  }
  throw invalid(`the proof of possession was refused: its ${what} is not a JSON object`);
}

/**
 * Verifies a proof for a request carrying `token` bound to `expectedJkt`. `url` is the URL as the
 * verifier sees it (its configured public base URL + the path), so a proof made for another host
 * or path is refused.
 */
export async function verifyProof(
  proof: string,
  request: ProofRequest & { expectedJkt: string; replayCache: ReplayCache },
  nowMs = Date.now(),
): Promise<void> {
  const parts = proof.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) throw invalid('the proof of possession was refused: it is not a compact JWS');
  const [h, p, sig] = parts as [string, string, string];
  const header = decodeJsonSegment(h, 'header');
  if (header.typ !== PROOF_TYPE || header.alg !== 'EdDSA') throw invalid(`the proof of possession was refused: it must be a "${PROOF_TYPE}" signed with EdDSA`);
  if ('crit' in header) throw invalid('the proof of possession was refused: unsupported "crit" header');
  const jwk = header.jwk as Partial<Ed25519PublicJwk> & { d?: unknown } | undefined;
  if (!jwk || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(jwk.x) || 'd' in jwk) {
    throw invalid('the proof of possession was refused: its header must carry the agent\'s Ed25519 public key');
  }
  const publicJwk: Ed25519PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
  if (jwkThumbprint(publicJwk) !== request.expectedJkt) throw invalid('the proof is not signed by the key the job token is bound to');
  let valid: boolean;
  try {
    valid = await verifyOffThread(Buffer.from(`${h}.${p}`), publicKeyFor(publicJwk), Buffer.from(sig, 'base64url'));
  } catch (err) {
    throw invalid('the proof of possession was refused: its signature could not be checked', err);
  }
  if (!valid) throw invalid('the proof of possession was refused: signature verification failed');
  const payload = decodeJsonSegment(p, 'payload');
  const mismatch = (claim: string, expected: string) => payload[claim] !== expected;
  if (mismatch('htm', request.method.toUpperCase()) || mismatch('htu', htuOf(request.url))) {
    throw invalid('the proof was made for another request (method or URL)');
  }
  if (mismatch('ath', sha256Base64url(request.token))) throw invalid('the proof was made for another job token');
  if (mismatch('bdh', sha256Base64url(request.body))) throw invalid('the proof does not match the request body');
  const iat = payload.iat;
  const nowS = nowMs / 1000;
  if (typeof iat !== 'number' || Math.abs(nowS - iat) > PROOF_WINDOW_S) {
    throw invalid('the proof is too old or from the future: check the agent\'s clock');
  }
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti.length < 16 || jti.length > 64) throw invalid('the proof has no valid jti');
  if (!request.replayCache.checkAndRemember(`${request.expectedJkt}:${jti}`, nowMs)) {
    throw new TokenError(TokenErrorCode.ProofReplayed, 'this request was already made once (replayed proof)');
  }
}
