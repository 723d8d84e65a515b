import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API token wire format: `arca_pat_` + base64url(orgId[16] ‖ tokenId[16] ‖ secret[32]).
 *
 * The organization and token IDs travel in the token so the lookup is a primary-key read inside
 * the tenant (row-level security never has to be bypassed to find a token); only the 256-bit
 * secret is secret. At rest there is only SHA-256(secret): a high-entropy random secret needs no
 * slow hash (nothing to brute-force), and a fast hash keeps every request cheap. The fixed prefix
 * lets secret scanners recognize leaked tokens.
 */
export const API_TOKEN_PREFIX = 'arca_pat_';
const BODY = /^[A-Za-z0-9_-]{86}$/;

export interface ParsedApiToken {
  orgId: string;
  tokenId: string;
  secret: Buffer;
}

export function newApiToken(orgId: string, tokenId: string): { token: string; secretHash: Buffer } {
  const secret = randomBytes(32);
  const body = Buffer.concat([uuidBytes(orgId), uuidBytes(tokenId), secret]);
  return { token: API_TOKEN_PREFIX + body.toString('base64url'), secretHash: hashSecret(secret) };
}

/** Returns null for anything that is not a well-formed token (never throws on hostile input). */
export function parseApiToken(token: string): ParsedApiToken | null {
  if (!token.startsWith(API_TOKEN_PREFIX)) return null;
  const body = token.slice(API_TOKEN_PREFIX.length);
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

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function uuidString(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
