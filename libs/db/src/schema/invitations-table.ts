import { pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { bytea } from './bytea-column.ts';

/**
 * An invitation to join an organization with a role (migrations/0002): single-use, expiring,
 * only the SHA-256 of its secret stored. Accepted by signing in through its link with the
 * invited, verified email address. The bootstrap link of a new organization is one (role owner).
 */
export const invitations = pgTable(
  'invitations',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    email: text('email').notNull(),
    roleId: uuid('role_id').notNull(),
    secretHash: bytea('secret_hash').notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    acceptedAt: timestamp('accepted_at', { withTimezone: true }),
    acceptedUserId: uuid('accepted_user_id'),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);

export type InvitationRow = typeof invitations.$inferSelect;
