import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ENROLLMENT_TOKEN_PREFIX } from '@arca/contracts';

/**
 * API token wire format: `arca_pat_` + base64url(orgId[16] ‖ tokenId[16] ‖ secret[32]). Session
 * cookies (`arca_ses_`) and invitation codes (`arca_inv_`) use the same layout, for the same
 * reasons.
 *
 * The organization and token IDs travel in the token so the lookup is a primary-key read inside
 * the tenant (row-level security never has to be bypassed to find a token); only the 256-bit
 * secret is secret. At rest there is only SHA-256(secret): a high-entropy random secret needs no
 * slow hash (nothing to brute-force), and a fast hash keeps every request cheap. The fixed prefix
 * lets secret scanners recognize leaked tokens.
 */
export const API_TOKEN_PREFIX = 'arca_pat_';
export const SESSION_PREFIX = 'arca_ses_';
export const INVITATION_PREFIX = 'arca_inv_';
/** Agent enrollment tokens (docs/fleet.md §2): the agent API's contract names the prefix. */
export const ENROLLMENT_PREFIX = ENROLLMENT_TOKEN_PREFIX;
type OpaquePrefix = typeof API_TOKEN_PREFIX | typeof SESSION_PREFIX | typeof INVITATION_PREFIX | typeof ENROLLMENT_PREFIX;
const BODY = /^[A-Za-z0-9_-]{86}$/;

export interface ParsedApiToken {
  orgId: string;
  tokenId: string;
  secret: Buffer;
}

export function newApiToken(orgId: string, tokenId: string): { token: string; secretHash: Buffer } {
  return newOpaqueToken(API_TOKEN_PREFIX, orgId, tokenId);
}

/** Returns null for anything that is not a well-formed token (never throws on hostile input). */
export function parseApiToken(token: string): ParsedApiToken | null {
  return parseOpaqueToken(API_TOKEN_PREFIX, token);
}

export function newOpaqueToken(prefix: OpaquePrefix, orgId: string, id: string): { token: string; secretHash: Buffer } {
  const secret = randomBytes(32);
  const body = Buffer.concat([uuidBytes(orgId), uuidBytes(id), secret]);
  return { token: prefix + body.toString('base64url'), secretHash: hashSecret(secret) };
}

/** `tokenId` is the session's or invitation's ID for those prefixes. Null for anything malformed. */
export function parseOpaqueToken(prefix: OpaquePrefix, token: string): ParsedApiToken | null {
  if (!token.startsWith(prefix)) return null;
  const body = token.slice(prefix.length);
  if (!BODY.test(body)) return null;
  const bytes = Buffer.from(body, 'base64url');
  if (bytes.length !== 64) return null;
  return { orgId: uuidString(bytes.subarray(0, 16)), tokenId: uuidString(bytes.subarray(16, 32)), secret: bytes.subarray(32) };
}

export function hashSecret(secret: Buffer): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Constant-time comparison of the presented secret's hash with the stored one. */
export function secretMatches(secret: Buffer, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return storedHash.length === presented.length && timingSafeEqual(presented, storedHash);
}

export function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

export function uuidString(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
