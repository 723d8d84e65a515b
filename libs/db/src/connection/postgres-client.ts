import postgres, { type Sql, type TransactionSql } from 'postgres';
import type { SqlClient } from './sql-client.ts';

export interface PostgresOptions {
  url: string;
  /** connections in the pool */
  max?: number;
  applicationName?: string;
}

/** A postgres.js pool. Notices (e.g. "relation already exists, skipping") are not printed. */
export function createPostgresSql(options: PostgresOptions): Sql {
  return postgres(options.url, {
    max: options.max ?? 10,
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? 'arca-control-plane' },
    // fail fast instead of queueing forever when the server is unreachable
    connect_timeout: 10,
    idle_timeout: 60,
  });
}

export function postgresSqlClient(sql: Sql | TransactionSql): SqlClient {
  return {
    kind: 'postgres',
    async query<T extends object>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const rows = await sql.unsafe(text, params as never[]);
      return [...rows] as unknown as T[];
    },
    async exec(text: string): Promise<void> {
      // the simple query protocol runs a multi-statement migration file as written
      await sql.unsafe(text).simple();
    },
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      if (!('begin' in sql)) throw new Error('nested transactions are not supported');
      return (await sql.begin((tx) => fn(postgresSqlClient(tx)))) as T;
    },
  };
}
