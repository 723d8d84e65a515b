/**
 * The few raw-SQL operations the migration runner and health checks need, over either driver
 * (postgres.js for a server, PGlite for the embedded database). Application queries go through
 * Drizzle instead (database.ts).
 */
export interface SqlClient {
  readonly kind: 'postgres' | 'pglite';
  /** One statement with `$1`, `$2`… parameters; returns its rows. */
  query<T extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<T[]>;
  /** Several statements without parameters (a migration file). */
  exec(text: string): Promise<void>;
  /** Runs `fn` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
}
