import { boolean, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/**
 * One permission of a custom role as stored: an action on a subject type, optionally limited to
 * resources whose labels match (every listed label must have one of the listed values).
 */
export interface StoredPermission {
  action: string;
  subject: string;
  labels?: Record<string, string[]>;
}

/** A role of one organization: a built-in one (rules in code) or a custom one (rules here). */
export const roles = pgTable(
  'roles',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    builtin: boolean('builtin').notNull().default(false),
    permissions: jsonb('permissions').$type<StoredPermission[]>().notNull().default([]),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);

export type RoleRow = typeof roles.$inferSelect;
