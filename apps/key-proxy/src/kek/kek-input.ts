import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import type { KekContext } from './kek-provider.ts';

const STORE_ID = /^[0-9a-f]{64}$/;
const MAX_ORG_LENGTH = 256;

/**
 * Every provider binds a wrapped key to `org` and `store` by serializing them (GCM associated data
 * `arca/envelope/v1\0org\0store`, Vault context `org/store`, KMS encryption context). Those
 * encodings are only unambiguous if the parts are well formed: the store ID is fixed-length hex and
 * the org contains no NUL separator. Checked here, before anything reaches a provider, so a
 * malformed context can never alias another store's binding.
 */
export function checkKekContext(context: KekContext): void {
  const { org, store } = context;
  if (typeof org !== 'string' || org.length === 0 || org.length > MAX_ORG_LENGTH || org.includes('\0')) {
    throw new KeyProxyError(
      KeyProxyErrorCode.InvalidRequest,
      `organization ID must be 1-${MAX_ORG_LENGTH} characters without NUL`,
    );
  }
  if (typeof store !== 'string' || !STORE_ID.test(store)) {
    throw new KeyProxyError(KeyProxyErrorCode.InvalidRequest, 'store ID must be 64 lowercase hex characters');
  }
}

/** Master keys are 256-bit (docs/store-format.md §4); anything else is a caller bug. */
export function checkMasterKey(masterKey: Buffer): void {
  if (!Buffer.isBuffer(masterKey) || masterKey.length !== 32) {
    throw new KeyProxyError(KeyProxyErrorCode.Internal, 'master key to wrap must be 32 bytes');
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict standard base64 (Buffer.from silently skips invalid characters, which would let two
 * different strings name the same ciphertext). A malformed ciphertext is a refusal like a tampered
 * one: PROVIDER_ERROR, without echoing the value.
 */
export function decodeBase64Ciphertext(ct: string, what: string): Buffer {
  if (typeof ct !== 'string' || ct.length === 0 || !BASE64.test(ct)) {
    throw new KeyProxyError(KeyProxyErrorCode.ProviderError, `${what} ciphertext is not valid base64`);
  }
  return Buffer.from(ct, 'base64');
}

/** The provider answered and refused (wrong context, tampered ciphertext, unknown key). */
export function providerRefusal(message: string): KeyProxyError {
  return new KeyProxyError(KeyProxyErrorCode.ProviderError, message);
}

/** The provider could not be reached or is not ready. */
export function providerUnavailable(message: string): KeyProxyError {
  return new KeyProxyError(KeyProxyErrorCode.ProviderUnavailable, message);
}

/** Invalid provider settings (start-up). */
export function providerConfigError(message: string): KeyProxyError {
  return new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, message);
}
