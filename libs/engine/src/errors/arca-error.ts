/**
 * One exception class for the engine, with a stable code per failure. The CLI maps codes to exit
 * statuses and messages; `hint` tells the user what to do next. Never put key material or
 * passphrases into a message.
 */
export const ArcaErrorCode = {
  StoreNotFound: 'STORE_NOT_FOUND',
  StoreExists: 'STORE_EXISTS',
  WrongPassphrase: 'WRONG_PASSPHRASE',
  ConfigTampered: 'CONFIG_TAMPERED',
  UnsupportedFormat: 'UNSUPPORTED_FORMAT',
  SnapshotNotFound: 'SNAPSHOT_NOT_FOUND',
  AmbiguousSnapshot: 'AMBIGUOUS_SNAPSHOT',
  PathNotFound: 'PATH_NOT_FOUND',
  BlobNotFound: 'BLOB_NOT_FOUND',
  CorruptObject: 'CORRUPT_OBJECT',
  Locked: 'LOCKED',
  BackendError: 'BACKEND_ERROR',
  NoSpace: 'NO_SPACE',
  InvalidArgument: 'INVALID_ARGUMENT',
  KeyNotFound: 'KEY_NOT_FOUND',
  LastKey: 'LAST_KEY',
  SourceNotFound: 'SOURCE_NOT_FOUND',
  /** a stream's source failed: the command feeding it exited non-zero, was killed, or could not start */
  SourceFailed: 'SOURCE_FAILED',
  Interrupted: 'INTERRUPTED',
  /** the key proxy answered with an error (its code and message are in the message) */
  KeyProxyRefused: 'KEY_PROXY_REFUSED',
  /** the key proxy could not be reached, or stayed overloaded, for the whole retry period */
  KeyProxyUnavailable: 'KEY_PROXY_UNAVAILABLE',
  /** the key proxy sent a response that does not follow the protocol (docs/key-proxy.md) */
  KeyProxyProtocol: 'KEY_PROXY_PROTOCOL',
  /** the key proxy URL given to the agent and the one in the store's config differ */
  KeyProxyMismatch: 'KEY_PROXY_MISMATCH',
} as const;
export type ArcaErrorCode = (typeof ArcaErrorCode)[keyof typeof ArcaErrorCode];

export class ArcaError extends Error {
  readonly code: ArcaErrorCode;
  readonly hint: string | undefined;

  constructor(code: ArcaErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ArcaError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isArcaError(err: unknown, code?: ArcaErrorCode): err is ArcaError {
  return err instanceof ArcaError && (code === undefined || err.code === code);
}

/** Translate a Node system error from a write path into an ArcaError the user can act on. */
export function fromSystemError(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new ArcaError(ArcaErrorCode.NoSpace, `no space left on device while writing ${what}`, {
      hint: 'free space on the store\'s disk and run the command again; data already stored is intact',
      cause: err,
    });
  }
  return err;
}
