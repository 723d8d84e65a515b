/**
 * One exception class for the database layer, with a stable code per failure. Messages say what
 * is wrong and what to do; they never contain connection passwords.
 */
export const DbErrorCode = {
  /** an applied migration's file changed since it was applied */
  MigrationChecksumMismatch: 'MIGRATION_CHECKSUM_MISMATCH',
  /** the migrations folder is malformed (bad name, duplicate or missing version) */
  MigrationFilesInvalid: 'MIGRATION_FILES_INVALID',
  /** a migration failed to apply (the whole run was rolled back) */
  MigrationFailed: 'MIGRATION_FAILED',
  /** the runtime role could bypass row-level security (superuser or BYPASSRLS) */
  InsecureRole: 'INSECURE_ROLE',
  /** withTenant was called with something that is not an organization ID */
  InvalidTenant: 'INVALID_TENANT',
  /** the database could not be opened or reached */
  ConnectionFailed: 'CONNECTION_FAILED',
  /** COMMIT found the transaction aborted by an earlier failed statement: nothing was committed */
  TransactionAborted: 'TRANSACTION_ABORTED',
} as const;
export type DbErrorCode = (typeof DbErrorCode)[keyof typeof DbErrorCode];

export class DbError extends Error {
  readonly code: DbErrorCode;

  constructor(code: DbErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DbError';
    this.code = code;
  }
}

export function isDbError(err: unknown, code?: DbErrorCode): err is DbError {
  return err instanceof DbError && (code === undefined || err.code === code);
}
