import { ENROLLMENT_PREFIX, newOpaqueToken, parseOpaqueToken, type ParsedApiToken } from '../auth/api-token-format.ts';

/**
 * Enrollment tokens (docs/fleet.md §2): `arca_enr_` + base64url(orgId ‖ tokenId ‖ secret), the
 * opaque-token layout of API tokens — the organization travels in the token so enrollment finds
 * it inside the tenant; only SHA-256(secret) is stored.
 */
export function newEnrollmentToken(orgId: string, tokenId: string): { token: string; secretHash: Buffer } {
  return newOpaqueToken(ENROLLMENT_PREFIX, orgId, tokenId);
}

export function parseEnrollmentToken(token: string): ParsedApiToken | null {
  return parseOpaqueToken(ENROLLMENT_PREFIX, token);
}
