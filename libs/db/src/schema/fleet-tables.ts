import { bigint, boolean, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { bytea } from './bytea-column.ts';

/**
 * The fleet's tables (migrations/0003_fleet.sql, docs/fleet.md §6): enrollment tokens, agents,
 * stores, resources, policies, jobs, job events and the snapshot catalog. One file because they
 * reference each other and change together; the SQL is the source of truth (tests compare).
 */

export type Labels = Record<string, string>;
const ts = (name: string) => timestamp(name, { withTimezone: true });

/** An enrollment token: only the SHA-256 of its secret is stored; the token is shown once. */
export const enrollmentTokens = pgTable(
  'enrollment_tokens',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    name: text('name').notNull(),
    secretHash: bytea('secret_hash').notNull(),
    labels: jsonb('labels').$type<Labels>().notNull().default({}),
    maxUses: integer('max_uses').notNull(),
    uses: integer('uses').notNull().default(0),
    expiresAt: ts('expires_at').notNull(),
    revokedAt: ts('revoked_at'),
    createdBy: text('created_by').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);
export type EnrollmentTokenRow = typeof enrollmentTokens.$inferSelect;

export type AgentStatus = 'active' | 'disabled' | 'removed';

/** An enrolled agent: identified by its Ed25519 public key; no agent secret exists. */
export const agents = pgTable(
  'agents',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    name: text('name').notNull(),
    publicKeyX: text('public_key_x').notNull(),
    keyThumbprint: text('key_thumbprint').notNull(),
    status: text('status').$type<AgentStatus>().notNull().default('active'),
    labels: jsonb('labels').$type<Labels>().notNull().default({}),
    hostname: text('hostname').notNull().default(''),
    os: text('os').notNull().default(''),
    arch: text('arch').notNull().default(''),
    version: text('version').notNull().default(''),
    uptimeSeconds: bigint('uptime_seconds', { mode: 'number' }),
    load: jsonb('load').$type<number[]>(),
    freeBytes: bigint('free_bytes', { mode: 'number' }),
    inventory: jsonb('inventory').$type<Record<string, unknown>[]>().notNull().default([]),
    enrolledWith: uuid('enrolled_with'),
    lastSeenAt: ts('last_seen_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);
export type AgentRow = typeof agents.$inferSelect;

export type StoreKind = 'fs' | 's3';
export type StoreStatus = 'initializing' | 'ready' | 'failed';

/** A registered Arca store; its backend credentials are sealed by the control plane's secrets key. */
export const stores = pgTable(
  'stores',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    name: text('name').notNull(),
    storeId: text('store_id').notNull(),
    kind: text('kind').$type<StoreKind>().notNull(),
    url: text('url').notNull(),
    credentialsSealed: bytea('credentials_sealed'),
    keyProxyUrl: text('key_proxy_url').notNull(),
    immutable: boolean('immutable').notNull().default(false),
    labels: jsonb('labels').$type<Labels>().notNull().default({}),
    status: text('status').$type<StoreStatus>().notNull().default('initializing'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);
export type StoreRow = typeof stores.$inferSelect;

export type ResourceKind = 'path' | 'postgres';

/** Something to protect on one agent: paths, or a PostgreSQL database. */
export const resources = pgTable(
  'resources',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    agentId: uuid('agent_id').notNull(),
    name: text('name').notNull(),
    kind: text('kind').$type<ResourceKind>().notNull(),
    spec: jsonb('spec').$type<Record<string, unknown>>().notNull(),
    labels: jsonb('labels').$type<Labels>().notNull().default({}),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);
export type ResourceRow = typeof resources.$inferSelect;

/** Retention as stored: the `keep*` counts of forget (absent = not used). */
export type StoredRetention = Partial<Record<'keepLast' | 'keepHourly' | 'keepDaily' | 'keepWeekly' | 'keepMonthly' | 'keepYearly', number>>;

/** A policy (SLA domain), assigned to resources by its label selector. */
export const policies = pgTable(
  'policies',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    name: text('name').notNull(),
    schedule: text('schedule').notNull(),
    timezone: text('timezone').notNull(),
    rpoMinutes: integer('rpo_minutes').notNull(),
    retention: jsonb('retention').$type<StoredRetention>().notNull().default({}),
    storeId: uuid('store_id').notNull(),
    copyStoreId: uuid('copy_store_id'),
    restoreTestEveryDays: integer('restore_test_every_days'),
    selector: jsonb('selector').$type<Record<string, string[]>>().notNull().default({}),
    priority: integer('priority').notNull().default(100),
    enabled: boolean('enabled').notNull().default(true),
    nextRunAt: ts('next_run_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);
export type PolicyRow = typeof policies.$inferSelect;

export type JobKind = 'init' | 'backup' | 'restore' | 'check' | 'replicate' | 'forget' | 'restore-test';
export type JobStatus = 'queued' | 'leased' | 'running' | 'succeeded' | 'partial' | 'failed' | 'cancelled';
export interface StoredJobError {
  code: string;
  message: string;
  retryable?: boolean;
}

/** The durable job queue: leased by agents with FOR UPDATE SKIP LOCKED (docs/fleet.md §4). */
export const jobs = pgTable(
  'jobs',
  {
    orgId: uuid('org_id').notNull(),
    id: uuid('id').notNull(),
    kind: text('kind').$type<JobKind>().notNull(),
    status: text('status').$type<JobStatus>().notNull().default('queued'),
    agentId: uuid('agent_id').notNull(),
    storeId: uuid('store_id'),
    copyStoreId: uuid('copy_store_id'),
    resourceId: uuid('resource_id'),
    policyId: uuid('policy_id'),
    scheduledFor: ts('scheduled_for'),
    spec: jsonb('spec').$type<Record<string, unknown>>().notNull().default({}),
    priority: integer('priority').notNull().default(100),
    attempt: integer('attempt').notNull().default(1),
    maxAttempts: integer('max_attempts').notNull().default(3),
    runAfter: ts('run_after').notNull().defaultNow(),
    leaseExpiresAt: ts('lease_expires_at'),
    cancelRequested: boolean('cancel_requested').notNull().default(false),
    progress: jsonb('progress').$type<Record<string, unknown>>(),
    result: jsonb('result').$type<Record<string, unknown>>(),
    error: jsonb('error').$type<StoredJobError>(),
    requestedBy: text('requested_by').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.id] })],
);
export type JobRow = typeof jobs.$inferSelect;

export type JobEventLevel = 'debug' | 'info' | 'warn' | 'error';

/** A job's history and log lines, in order. */
export const jobEvents = pgTable(
  'job_events',
  {
    orgId: uuid('org_id').notNull(),
    jobId: uuid('job_id').notNull(),
    seq: integer('seq').notNull(),
    time: ts('time').notNull().defaultNow(),
    kind: text('kind').notNull(),
    level: text('level').$type<JobEventLevel>().notNull().default('info'),
    message: text('message').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.jobId, t.seq] })],
);
export type JobEventRow = typeof jobEvents.$inferSelect;

/** The catalog: snapshot metadata as agents report it — sizes and counts, never names or contents. */
export const snapshots = pgTable(
  'snapshots',
  {
    orgId: uuid('org_id').notNull(),
    storeId: uuid('store_id').notNull(),
    snapshotId: text('snapshot_id').notNull(),
    resourceId: uuid('resource_id'),
    agentId: uuid('agent_id'),
    jobId: uuid('job_id'),
    time: ts('time').notNull(),
    hostname: text('hostname').notNull().default(''),
    tags: text('tags').array().notNull().default([]),
    parent: text('parent'),
    totalBytes: bigint('total_bytes', { mode: 'number' }).notNull().default(0),
    fileCount: bigint('file_count', { mode: 'number' }).notNull().default(0),
    dirCount: bigint('dir_count', { mode: 'number' }).notNull().default(0),
    newBytes: bigint('new_bytes', { mode: 'number' }).notNull().default(0),
    storedBytes: bigint('stored_bytes', { mode: 'number' }).notNull().default(0),
    durationMs: bigint('duration_ms', { mode: 'number' }).notNull().default(0),
    removedAt: ts('removed_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.storeId, t.snapshotId] })],
);
export type SnapshotRow = typeof snapshots.$inferSelect;
