import { createHash } from 'node:crypto';
import { ENVELOPE_MAX_LENGTH, ENVELOPE_PREFIX } from '@arca/contracts';
import { z } from 'zod';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import type { KekContext, KekProviderName, WrappedKey } from '../kek/kek-provider.ts';

/**
 * The envelope codec (docs/key-proxy.md §1): `arca-env1.` + base64url (no padding) of the UTF-8
 * JSON `{ v, provider, kek, org, store, ct }`, fields in that order. The envelope is public (it is
 * stored in the store's config): confidentiality comes from the provider's wrapping, and the
 * binding to org and store from the provider's associated data / context.
 */
export interface Envelope {
  v: 1;
  provider: KekProviderName;
  kek: string;
  org: string;
  store: string;
  ct: string;
}

const envelopeSchema = z.object({
  v: z.literal(1),
  provider: z.enum(['local', 'vault', 'aws-kms', 'pkcs11']),
  kek: z.string().min(1).max(2048),
  org: z.string().min(1).max(256).refine((s) => !s.includes('\0')),
  store: z.string().regex(/^[0-9a-f]{64}$/),
  ct: z.string().min(1).max(4096),
});

const B64URL = /^[A-Za-z0-9_-]+$/;

export function encodeEnvelope(envelope: Envelope): string {
  const json = JSON.stringify({
    v: envelope.v, provider: envelope.provider, kek: envelope.kek, org: envelope.org, store: envelope.store, ct: envelope.ct,
  });
  return ENVELOPE_PREFIX + Buffer.from(json, 'utf8').toString('base64url');
}

/** Throws INVALID_REQUEST (without echoing the envelope) when the string is not a well-formed envelope. */
export function decodeEnvelope(text: string): Envelope {
  const refuse = (why: string) =>
    new KeyProxyError(KeyProxyErrorCode.InvalidRequest, `the envelope is malformed (${why}): send the store config's keyCustody.envelope unchanged`);
  if (text.length > ENVELOPE_MAX_LENGTH) throw refuse('too long');
  if (!text.startsWith(ENVELOPE_PREFIX)) throw refuse(`it does not start with "${ENVELOPE_PREFIX}"`);
  const body = text.slice(ENVELOPE_PREFIX.length);
  if (!B64URL.test(body)) throw refuse('not base64url');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw refuse('not JSON');
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) throw refuse(`bad field ${parsed.error.issues.map((i) => i.path.join('.') || 'root').join(', ')}`);
  return parsed.data as Envelope;
}

export function wrappedKeyOf(envelope: Envelope): WrappedKey {
  return { kek: envelope.kek, ct: envelope.ct };
}

export function contextOf(envelope: Envelope): KekContext {
  return { org: envelope.org, store: envelope.store };
}

/** The cache key of an envelope: SHA-256 of the string (public data; no key material). */
export function envelopeDigest(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}
