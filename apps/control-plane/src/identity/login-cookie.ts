import { z } from 'zod';
import type { LoginChecks } from './oidc-client.service.ts';

/**
 * The in-flight sign-in, kept by the browser (HttpOnly, SameSite=Lax, ten minutes) rather than
 * on the server, so any replica can finish it. Nothing in it grants anything: the state and
 * nonce only bind the provider's answer to this browser, the PKCE verifier only lets this
 * browser's attempt redeem its code, and the target (organization or invitation code) is what
 * the person asked for in the first place. Every field is validated again when it comes back.
 */
export interface LoginAttempt extends LoginChecks {
  orgId: string;
  /** the invitation code (arca_inv_…) when signing in through an invitation link */
  invitation: string | null;
  /** where to go after signing in: a path on this origin */
  returnTo: string;
}

const attemptSchema = z.strictObject({
  state: z.string().min(16).max(128),
  nonce: z.string().min(16).max(128),
  codeVerifier: z.string().min(43).max(128),
  orgId: z.uuid(),
  invitation: z.string().max(200).nullable(),
  returnTo: z.string().max(2000),
});

export function encodeLoginAttempt(attempt: LoginAttempt): string {
  return Buffer.from(JSON.stringify(attempt)).toString('base64url');
}

export function decodeLoginAttempt(value: string | undefined): LoginAttempt | null {
  if (value == null || value === '' || value.length > 4000) return null;
  try {
    const parsed = attemptSchema.safeParse(JSON.parse(Buffer.from(value, 'base64url').toString('utf8')));
    return parsed.success && isSafeReturnPath(parsed.data.returnTo) ? parsed.data : null;
  } catch {
    return null;
  }
}

/** A path on this origin only: "/x", never "//host", "/\\host" or a scheme (no open redirect). */
export function isSafeReturnPath(path: string): boolean {
  return /^\/(?![/\\])[\x21-\x7e]*$/.test(path) && !path.includes('\\');
}
