import { getTableColumns, sql, type SQL, type Table } from 'drizzle-orm';

/**
 * Rows of hand-written SQL in the shape Drizzle's query builder returns, for statements the
 * builder cannot express (data-modifying CTEs that lease or complete a job in one statement).
 *
 * `columnList(jobs, 'l', 'j_')` selects every column of the table from the alias `l` as
 * `"j_<column>"`; `rowFromDriver(jobs, raw, 'j_')` reads them back through each column's own
 * driver mapping (timestamps to Date, bytea to Buffer, jsonb parsed), keyed by the schema's
 * property names.
 */
export function columnList(table: Table, alias: string, prefix: string): SQL {
  const columns = Object.values(getTableColumns(table)).map((c) => `${alias}."${c.name}" AS "${prefix}${c.name}"`);
  return sql.raw(columns.join(', '));
}

export function rowFromDriver<T>(table: Table, raw: Record<string, unknown>, prefix: string): T {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(table))) {
    const value = raw[`${prefix}${column.name}`];
    row[key] = value == null ? null : column.mapFromDriverValue(value);
  }
  return row as T;
}
