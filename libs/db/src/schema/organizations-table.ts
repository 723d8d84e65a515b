import { pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/** One tenant. Its `id` is the `org_id` of every other tenant row (migrations/0001). */
export const organizations = pgTable('organizations', {
  id: uuid('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export type OrganizationRow = typeof organizations.$inferSelect;
