import { AsyncLocalStorage } from 'node:async_hooks';
import type { RelationalSchemaConfig, TablesRelationalConfig } from 'drizzle-orm';
import type { PgDialect } from 'drizzle-orm/pg-core';
import { PostgresJsSession, PostgresJsTransaction, type PostgresJsSessionOptions } from 'drizzle-orm/postgres-js';
import type { ReservedSql, Sql } from 'postgres';
import { DbError, DbErrorCode } from '../db-error.ts';

/**
 * Tenant transactions on Postgres with as few round trips as the driver allows.
 *
 * `Database.withTenant` used Drizzle's `transaction` (postgres.js `begin`): BEGIN, then
 * `set_config`, the queries and COMMIT, each awaited in turn — and postgres.js sends a
 * parameterised *unnamed* statement in two round trips (Parse/Describe, then Bind/Execute), so a
 * one-query read cost six round trips and as many socket writes. Here:
 *
 * - a connection is reserved, and BEGIN and `set_config('app.org_id', $1, true)` are sent without
 *   waiting: postgres.js coalesces everything written in one tick into one socket write, so they
 *   travel with the transaction's first query; a failure of either aborts the transaction, so the
 *   queries after it fail too (and without a tenant, RLS shows nothing anyway);
 * - Drizzle's statements run as named prepared statements (one round trip each, pipelined when
 *   issued together; parsed and planned once per connection), up to a bounded number of distinct
 *   statement texts — beyond it, unnamed statements as before;
 * - the transaction always ends with COMMIT or ROLLBACK before the connection goes back to the
 *   pool, so `app.org_id` (transaction-local anyway) never outlives it.
 *
 * Shared reads: inside `ReadScopes.run` (one scope per HTTP request), `read` calls of the same
 * tenant that overlap in time share one READ ONLY transaction — the GraphQL resolvers of one
 * request, started together, cost one BEGIN…COMMIT instead of one each. The transaction is
 * committed as soon as no read uses it: a request never holds a pooled connection while it waits
 * for another one (an audit write, say), so requests cannot deadlock on an exhausted pool.
 */

/** Distinct statement texts run as named prepared statements (per connection at most this many). */
export const MAX_PREPARED_STATEMENTS = 1000;

const SET_TENANT = "SELECT set_config('app.org_id', $1, true)";

/** The parts of the Drizzle instance a transaction's session is built from. */
export interface DrizzleParts {
  dialect: PgDialect;
  schema: RelationalSchemaConfig<TablesRelationalConfig> | undefined;
  options: PostgresJsSessionOptions | undefined;
}

/** Which statement texts may be prepared: the first MAX_PREPARED_STATEMENTS seen, then no more. */
export class PreparedStatementBudget {
  private readonly texts = new Set<string>();
  private readonly max: number;

  constructor(max = MAX_PREPARED_STATEMENTS) {
    this.max = max;
  }

  allows(text: string): boolean {
    if (this.texts.has(text)) return true;
    if (this.texts.size >= this.max) return false;
    this.texts.add(text);
    return true;
  }
}

/** One tenant transaction on a reserved connection (opened by `open`, ended by `finish`). */
export class OpenTenantTransaction<Tx> {
  readonly tx: Tx;
  /** BEGIN's or set_config's error, once known (then the transaction never did anything) */
  setupError: unknown = undefined;
  private readonly reserved: ReservedSql;
  private readonly setup: Promise<void>;
  private finished = false;

  private constructor(reserved: ReservedSql, tx: Tx, setup: Promise<void>) {
    this.reserved = reserved;
    this.tx = tx;
    this.setup = setup;
  }

  /**
   * `onTickEnd`: called from a setImmediate registered before BEGIN is written, so it runs just
   * before postgres.js flushes what this tick wrote to the connection — a COMMIT sent from it
   * leaves in the same socket write as BEGIN, set_config and the statements issued meanwhile.
   */
  static async open<Tx>(pool: Sql, parts: DrizzleParts, budget: PreparedStatementBudget, orgId: string, readOnly: boolean, onTickEnd?: () => void): Promise<OpenTenantTransaction<Tx>> {
    const reserved = await pool.reserve();
    if (onTickEnd != null) setImmediate(onTickEnd);
    // Sent now, not awaited: they go out in the same write as the first query of the transaction.
    const begin = reserved.unsafe(readOnly ? 'BEGIN READ ONLY' : 'BEGIN').execute();
    const setTenant = reserved.unsafe(SET_TENANT, [orgId], { prepare: true }).execute();
    const client = {
      unsafe: (text: string, params?: unknown[]) => reserved.unsafe(text, params as never[], { prepare: budget.allows(text) }),
      // Drizzle's nested transactions (savepoints) would need the driver's own begin()
      savepoint: () => { throw new Error('nested transactions are not supported in a tenant transaction'); },
    };
    const session = new PostgresJsSession<Sql, Record<string, unknown>, TablesRelationalConfig>(client as unknown as Sql, parts.dialect, parts.schema, parts.options);
    // (Drizzle types a transaction's session over postgres.js's TransactionSql; ours is a reserved connection)
    const tx = new PostgresJsTransaction(parts.dialect, session as never, parts.schema) as unknown as Tx;
    let open: OpenTenantTransaction<Tx> | null = null;
    const setup = Promise.all([begin, setTenant]).then(
      () => undefined,
      (err: unknown) => {
        if (open != null) open.setupError = err;
      },
    );
    open = new OpenTenantTransaction(reserved, tx, setup);
    return open;
  }

  /**
   * COMMIT (when asked) or ROLLBACK, then returns the connection to the pool. Either statement
   * ends the transaction on the server, even when it reports an error; only a broken connection
   * (which the pool then discards) can keep them from running. Throws the set-up's error, if
   * any, else the closing statement's — and, when COMMIT found the transaction aborted (Postgres
   * then rolls back and answers ROLLBACK: a statement failed, even if its error was caught),
   * TRANSACTION_ABORTED, so that a commit is never reported that did not happen.
   */
  async finish(commit: boolean): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    // sent at once (behind whatever is still in flight), not after the set-up's answers
    const closing = this.reserved.unsafe(commit ? 'COMMIT' : 'ROLLBACK').execute();
    const [, closed] = await Promise.allSettled([this.setup, closing]);
    this.reserved.release();
    if (this.setupError !== undefined) throw this.setupError;
    if (closed.status === 'rejected') throw closed.reason;
    if (commit && closed.value.command === 'ROLLBACK') {
      throw new DbError(DbErrorCode.TransactionAborted, 'the transaction was rolled back because one of its statements failed');
    }
  }
}

/** Runs `fn` in its own tenant transaction: COMMIT when it returns, ROLLBACK when it throws. */
export async function runTenantTransaction<Tx, T>(
  open: () => Promise<OpenTenantTransaction<Tx>>,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  const transaction = await open();
  let result: T;
  try {
    result = await fn(transaction.tx);
  } catch (err) {
    await transaction.finish(false).catch(() => undefined);
    // a failed BEGIN/set_config explains fn's "current transaction is aborted" better
    throw transaction.setupError ?? err;
  }
  await transaction.finish(true);
  return result;
}

/** A read transaction shared by the overlapping reads of one scope. */
class SharedRead<Tx> {
  readonly orgId: string;
  readonly opening: Promise<OpenTenantTransaction<Tx>>;
  users = 0;
  failed = false;

  constructor(orgId: string, opening: Promise<OpenTenantTransaction<Tx>>) {
    this.orgId = orgId;
    this.opening = opening;
    // every user awaits it; this only keeps a failure from being reported as unhandled
    opening.catch(() => undefined);
  }
}

/**
 * Single-statement reads of one tenant issued in the same tick: BEGIN READ ONLY, set_config, the
 * statements and COMMIT leave in one socket write — one round trip for all of them.
 */
class StatementBatch<Tx> {
  readonly orgId: string;
  opening!: Promise<OpenTenantTransaction<Tx>>;
  /** COMMIT has been sent: no statement may join any more */
  closed = false;

  constructor(orgId: string) {
    this.orgId = orgId;
  }
}

/** The per-request state of shared reads (one tenant's transaction at a time). */
export class ReadScope {
  /** @internal the read transaction currently shared, if any */
  current: SharedRead<unknown> | null = null;
  /** @internal the statement batch of this tick, if any */
  batch: StatementBatch<unknown> | null = null;
}

/** Async-context scopes in which overlapping reads of one tenant share a transaction. */
export class ReadScopes {
  private readonly storage = new AsyncLocalStorage<ReadScope>();

  run<T>(fn: () => T): T {
    return this.storage.run(new ReadScope(), fn);
  }

  /**
   * Runs one statement (`run` must issue exactly one, at once) in a READ ONLY transaction whose
   * COMMIT is sent at the end of the current tick, together with BEGIN, set_config and every
   * statement of the same tenant and scope issued in that tick (the root resolvers of a GraphQL
   * request): one round trip and one socket write in all. A statement arriving later opens the
   * next batch. Its result does not wait for the COMMIT (a read-only transaction has nothing to
   * commit); the connection returns to the pool once the COMMIT is answered.
   */
  async readStatement<Tx, T>(orgId: string, open: (onTickEnd: () => void) => Promise<OpenTenantTransaction<Tx>>, run: (tx: Tx) => Promise<T>): Promise<T> {
    const scope = this.storage.getStore();
    let batch = scope?.batch as StatementBatch<Tx> | null | undefined;
    if (batch == null || batch.orgId !== orgId || batch.closed) {
      const fresh = new StatementBatch<Tx>(orgId);
      fresh.opening = open(() => {
        fresh.closed = true;
        if (scope?.batch === fresh) scope.batch = null;
        // the COMMIT is written before postgres.js's own setImmediate flushes the connection
        void fresh.opening.then((transaction) => transaction.finish(true)).catch(() => undefined);
      });
      fresh.opening.catch(() => undefined);
      if (scope != null && (scope.batch == null || scope.batch.closed)) scope.batch = fresh as StatementBatch<unknown>;
      batch = fresh;
    }
    const transaction = await batch.opening;
    // (cannot happen: statements resume in the tick their batch opened; never run one outside it)
    if (batch.closed) throw new Error('a batched read resumed after its transaction was committed');
    try {
      return await run(transaction.tx);
    } catch (err) {
      throw transaction.setupError ?? err;
    }
  }

  /**
   * Runs `fn` in the scope's shared READ ONLY transaction for `orgId` (opened by the first
   * overlapping read, committed when the last one finishes), or — outside a scope, while
   * another tenant's read is in flight, or after the shared one failed — in a read transaction of
   * its own. A read that fails makes the shared transaction end with ROLLBACK (reads already
   * sharing it may see the failure as an aborted transaction).
   */
  async read<Tx, T>(orgId: string, open: () => Promise<OpenTenantTransaction<Tx>>, fn: (tx: Tx) => Promise<T>): Promise<T> {
    const scope = this.storage.getStore();
    // no scope, another tenant's read in flight, or a shared transaction already failed: its own
    if (scope == null || (scope.current != null && (scope.current.orgId !== orgId || scope.current.failed))) return runTenantTransaction(open, fn);
    let shared = scope.current as SharedRead<Tx> | null;
    if (shared == null) {
      shared = new SharedRead<Tx>(orgId, open());
      scope.current = shared as SharedRead<unknown>;
    }
    shared.users++;
    let result: T | undefined;
    let failure: { error: unknown } | null = null;
    try {
      result = await fn((await shared.opening).tx);
    } catch (err) {
      failure = { error: err };
      shared.failed = true;
    }
    if (--shared.users === 0) {
      // from now on, a new read opens a new transaction
      if (scope.current === shared) scope.current = null;
      const transaction = await shared.opening.catch(() => null);
      if (transaction != null) {
        try {
          await transaction.finish(!shared.failed);
        } catch (err) {
          failure ??= { error: err };
        }
      }
    }
    if (failure != null) {
      const transaction = await shared.opening.catch(() => null);
      throw transaction?.setupError ?? failure.error;
    }
    return result as T;
  }
}
