/**
 * A KEK provider wraps and unwraps store master keys under a key-encryption key it never exports
 * (docs/key-proxy.md §1). Every provider binds the wrapped key to its organization and store, so
 * an envelope moved to another store or org fails to unwrap.
 */
export type KekProviderName = 'local' | 'vault' | 'aws-kms' | 'pkcs11';

export interface KekContext {
  /** organization ID */
  org: string;
  /** store ID, 64 lowercase hex characters */
  store: string;
}

/** The provider-specific part of an envelope. */
export interface WrappedKey {
  /** which KEK: local KEK id, Vault transit key name, KMS key id/ARN, PKCS#11 key label */
  kek: string;
  /** provider ciphertext (string form as stored in the envelope) */
  ct: string;
}

export interface KekProvider {
  readonly name: KekProviderName;
  /** Wrap a 32-byte master key. */
  wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey>;
  /**
   * Unwrap; the caller zeroes the returned buffer when done. Throws KeyProxyError PROVIDER_ERROR
   * when the provider refuses (wrong context, tampered ciphertext, unknown key) and
   * PROVIDER_UNAVAILABLE when it cannot be reached.
   */
  unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer>;
  /** Re-encrypt under the provider's current KEK version without exposing the key to the caller. */
  rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey>;
  /** Resolves when the provider answers; throws PROVIDER_UNAVAILABLE with the reason otherwise. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** Associated data binding a wrapped key to its org and store (local and PKCS#11 providers). */
export function envelopeAad(context: KekContext): Buffer {
  return Buffer.from(`arca/envelope/v1\0${context.org}\0${context.store}`, 'utf8');
}

/**
 * Rewrap for providers without a server-side rewrap (local, PKCS#11, or moving between Vault
 * keys): unwrap, wrap under the current KEK, and zero the master key whatever happens.
 */
export async function rewrapThroughMemory(provider: Pick<KekProvider, 'wrap' | 'unwrap'>, wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
  const masterKey = await provider.unwrap(wrapped, context);
  try {
    return await provider.wrap(masterKey, context);
  } finally {
    masterKey.fill(0);
  }
}
