import { customType } from 'drizzle-orm/pg-core';

/** bytea as a Buffer: postgres.js returns a Buffer, PGlite a Uint8Array; comparisons see one type. */
export const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
});
