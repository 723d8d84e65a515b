import type { PGlite, Transaction } from '@electric-sql/pglite';
import type { SqlClient } from './sql-client.ts';

export function pgliteSqlClient(pg: PGlite | Transaction): SqlClient {
  return {
    kind: 'pglite',
    async query<T extends object>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await pg.query<T>(text, params as unknown[])).rows;
    },
    async exec(text: string): Promise<void> {
      await pg.exec(text);
    },
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      if (!('transaction' in pg)) throw new Error('nested transactions are not supported');
      return pg.transaction((tx) => fn(pgliteSqlClient(tx)));
    },
  };
}
