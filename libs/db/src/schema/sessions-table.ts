import { pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { bytea } from './bytea-column.ts';

/**
 * A dashboard session (migrations/0002): the cookie carries org ID, session ID and a 256-bit
 * secret; only the secret's SHA-256 is stored. Ends at `expires_at`, after the idle timeout
 * counted from `last_seen_at`, or when revoked (logout, user suspended).
 */
export const sessions = pgTable(
  'sessions',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    userId: uuid('user_id').notNull(),
    secretHash: bytea('secret_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    revokedReason: text('revoked_reason'),
    ip: text('ip'),
    userAgent: text('user_agent'),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);

export type SessionRow = typeof sessions.$inferSelect;
