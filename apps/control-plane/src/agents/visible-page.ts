/**
 * Keyset pages under label conditions: a label-limited role may see only some rows, so one fetch
 * of `limit + 1` rows can yield a short page and a wrong `hasNextPage`. This keeps reading after
 * the last row scanned (in growing chunks) until `limit + 1` visible rows are found or the rows
 * end, so pages are full and cursors always point at rows the caller may see.
 */
export async function visiblePage<T, P>(
  limit: number,
  start: P | null,
  fetch: (after: P | null, count: number) => Promise<T[]>,
  positionOf: (row: T) => P,
  visible: (rows: T[]) => T[],
): Promise<T[]> {
  const found: T[] = [];
  let after = start;
  let count = limit + 1;
  for (;;) {
    const rows = await fetch(after, count);
    found.push(...visible(rows));
    if (found.length > limit || rows.length < count) return found.slice(0, limit + 1);
    after = positionOf(rows[rows.length - 1]!);
    count = Math.min(count * 2, 1000);
  }
}
