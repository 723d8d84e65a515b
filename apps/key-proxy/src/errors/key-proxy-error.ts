/**
 * One exception class for the key proxy, with a stable code per failure (docs/key-proxy.md §3).
 * Messages say what happened and what to do; they never contain key material, tokens or
 * envelope ciphertext.
 */
export const KeyProxyErrorCode = {
  InvalidRequest: 'INVALID_REQUEST',
  TokenInvalid: 'TOKEN_INVALID',
  TokenExpired: 'TOKEN_EXPIRED',
  ProofInvalid: 'PROOF_INVALID',
  ProofReplayed: 'PROOF_REPLAYED',
  OperationNotAllowed: 'OPERATION_NOT_ALLOWED',
  StoreMismatch: 'STORE_MISMATCH',
  GrantRequired: 'GRANT_REQUIRED',
  MasterKeyExists: 'MASTER_KEY_EXISTS',
  NotFound: 'NOT_FOUND',
  TooLarge: 'TOO_LARGE',
  RateLimited: 'RATE_LIMITED',
  /** the KEK provider answered but refused (wrong context, unknown key, tampered ciphertext) */
  ProviderError: 'PROVIDER_ERROR',
  /** the KEK provider could not be reached or is not ready */
  ProviderUnavailable: 'PROVIDER_UNAVAILABLE',
  /** configuration is invalid (start-up) */
  ConfigInvalid: 'CONFIG_INVALID',
  Internal: 'INTERNAL',
} as const;
export type KeyProxyErrorCode = (typeof KeyProxyErrorCode)[keyof typeof KeyProxyErrorCode];

const HTTP_STATUS: Record<KeyProxyErrorCode, number> = {
  INVALID_REQUEST: 400,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  PROOF_INVALID: 401,
  PROOF_REPLAYED: 401,
  OPERATION_NOT_ALLOWED: 403,
  STORE_MISMATCH: 403,
  GRANT_REQUIRED: 403,
  MASTER_KEY_EXISTS: 409,
  NOT_FOUND: 404,
  TOO_LARGE: 413,
  RATE_LIMITED: 429,
  PROVIDER_ERROR: 502,
  PROVIDER_UNAVAILABLE: 503,
  CONFIG_INVALID: 500,
  INTERNAL: 500,
};

export class KeyProxyError extends Error {
  readonly code: KeyProxyErrorCode;
  /** seconds, for RATE_LIMITED */
  readonly retryAfter: number | undefined;

  constructor(code: KeyProxyErrorCode, message: string, options: { cause?: unknown; retryAfter?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = 'KeyProxyError';
    this.code = code;
    this.retryAfter = options.retryAfter;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export function isKeyProxyError(err: unknown, code?: KeyProxyErrorCode): err is KeyProxyError {
  return err instanceof KeyProxyError && (code === undefined || err.code === code);
}
