import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Cookies of the dashboard. With Secure on (the default), names carry the `__Host-` prefix:
 * browsers then accept them only from this exact origin over HTTPS, with Path=/ and no Domain,
 * so a sibling subdomain cannot plant or overwrite them.
 *
 * - session: the opaque session credential (`arca_ses_…`), HttpOnly, SameSite=Lax.
 * - csrf: SHA-256 of the session secret, readable by the dashboard's script (not HttpOnly), which
 *   echoes it in the `x-arca-csrf` header. Another origin can neither read it nor set custom
 *   headers without a CORS preflight (and none is allowed), so a forged cross-site request cannot
 *   carry it. Being derived from the secret, a planted value is useless.
 * - login: the in-flight sign-in (state, nonce, PKCE verifier), HttpOnly, SameSite=Lax (it must
 *   come back on the provider's top-level redirect), ten minutes.
 */
export const CSRF_HEADER = 'x-arca-csrf';
export const LOGIN_COOKIE_MAX_AGE_SECONDS = 600;

export interface CookieNames {
  session: string;
  csrf: string;
  login: string;
}

export function cookieNames(secure: boolean): CookieNames {
  const prefix = secure ? '__Host-' : '';
  return { session: `${prefix}arca_session`, csrf: `${prefix}arca_csrf`, login: `${prefix}arca_login` };
}

/** The value of one cookie of a `cookie` header (the first, if repeated), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header == null || header === '') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface CookieOptions {
  secure: boolean;
  httpOnly: boolean;
  /** seconds; 0 deletes the cookie; undefined: a browser-session cookie */
  maxAge?: number;
}

/** Values here are base64url or our token alphabet: nothing to escape. */
export function serializeCookie(name: string, value: string, options: CookieOptions): string {
  const parts = [`${name}=${value}`, 'Path=/', 'SameSite=Lax'];
  if (options.maxAge != null) parts.push(`Max-Age=${options.maxAge}`);
  if (options.httpOnly) parts.push('HttpOnly');
  if (options.secure) parts.push('Secure');
  return parts.join('; ');
}

export function csrfTokenFor(sessionSecret: Buffer): string {
  return createHash('sha256').update('arca-csrf\n').update(sessionSecret).digest('base64url');
}

export function csrfMatches(sessionSecret: Buffer, presented: string | undefined): boolean {
  if (presented == null) return false;
  const expected = Buffer.from(csrfTokenFor(sessionSecret));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
