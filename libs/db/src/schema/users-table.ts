import { pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const USER_STATUSES = ['active', 'suspended'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

/**
 * A person in one organization. Users are per tenant (as a SCIM provisioning target sees them):
 * the same person in two organizations is two rows, so no row is ever shared between tenants.
 */
export const users = pgTable(
  'users',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    email: text('email').notNull(),
    displayName: text('display_name').notNull(),
    externalId: text('external_id'),
    status: text('status', { enum: USER_STATUSES }).notNull().default('active'),
    /** OpenID Connect issuer and subject, set at the first sign-in (migrations/0002) */
    oidcIssuer: text('oidc_issuer'),
    oidcSubject: text('oidc_subject'),
    lastSignInAt: timestamp('last_sign_in_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);

export type UserRow = typeof users.$inferSelect;
