import { z } from 'zod';

/**
 * Wire schemas of the control plane's agent API, `/agent/v1` (docs/fleet.md §2-4), shared by the
 * control plane (which validates requests) and `arca agent` (which validates responses). Objects
 * ignore unknown fields, so either side may add optional fields without breaking the other.
 */

export const AGENT_API_PREFIX = '/agent/v1';
export const AGENT_API_PATHS = {
  enroll: `${AGENT_API_PREFIX}/enroll`,
  heartbeat: `${AGENT_API_PREFIX}/heartbeat`,
  inventory: `${AGENT_API_PREFIX}/inventory`,
  lease: `${AGENT_API_PREFIX}/jobs/lease`,
  jobHeartbeat: (jobId: string): string => `${AGENT_API_PREFIX}/jobs/${encodeURIComponent(jobId)}/heartbeat`,
  jobToken: (jobId: string): string => `${AGENT_API_PREFIX}/jobs/${encodeURIComponent(jobId)}/token`,
  jobComplete: (jobId: string): string => `${AGENT_API_PREFIX}/jobs/${encodeURIComponent(jobId)}/complete`,
} as const;
/** The control plane's public job-token signing keys (what the key proxy's ARCA_KP_JWKS_URL names). */
export const JWKS_PATH = '/.well-known/arca-jwks.json';

/** Enrollment tokens: `arca_enr_` + base64url(orgId[16] ‖ tokenId[16] ‖ secret[32]). */
export const ENROLLMENT_TOKEN_PREFIX = 'arca_enr_';
/** Agent credentials (not secret; they name the agent): `arca_agt_` + base64url(orgId[16] ‖ agentId[16]). */
export const AGENT_CREDENTIAL_PREFIX = 'arca_agt_';
/** `Authorization: Agent <credential>` on every call but enrollment. */
export const AGENT_AUTH_SCHEME = 'Agent';
/** The proof-of-possession header (a DPoP-style JWT from createProof of @arca/crypto). */
export const PROOF_HEADER = 'DPoP';

export const AGENT_API_MAX_BODY_BYTES = 1024 * 1024;
export const LEASE_MAX_WAIT_SECONDS = 30;
export const LEASE_MAX_SLOTS = 16;
/** Log lines per job heartbeat (the control plane keeps the last 1,000 per job). */
export const JOB_LOGS_PER_HEARTBEAT = 200;

export const AgentApiErrorCode = {
  Unauthenticated: 'AGENT_UNAUTHENTICATED',
  Disabled: 'AGENT_DISABLED',
  Removed: 'AGENT_REMOVED',
  LeaseLost: 'LEASE_LOST',
  NotFound: 'NOT_FOUND',
  BadRequest: 'BAD_REQUEST',
  TooLarge: 'TOO_LARGE',
  Unavailable: 'UNAVAILABLE',
} as const;
export type AgentApiErrorCode = (typeof AgentApiErrorCode)[keyof typeof AgentApiErrorCode];

/** Every error response: `{ error: { code, message } }`. */
export const agentApiErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
export type AgentApiError = z.infer<typeof agentApiErrorSchema>;

const HEX64 = /^[0-9a-f]{64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const idSchema = z.string().regex(UUID, 'must be a UUID');
const hex64Schema = z.string().regex(HEX64, 'must be 64 lowercase hex characters');
const shortText = (max: number) => z.string().max(max);
const timeSchema = z.iso.datetime({ offset: true });

/** Labels: `{ key: value }`, keys like Kubernetes label keys. */
export const agentLabelsSchema = z
  .record(z.string().regex(/^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/, 'label keys: lowercase letters, digits, . _ / -, at most 63'), z.string().max(63))
  .refine((labels) => Object.keys(labels).length <= 64, 'at most 64 labels');

export const ed25519PublicJwkSchema = z.object({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a 32-byte Ed25519 public key in base64url'),
});
export type Ed25519PublicJwkWire = z.infer<typeof ed25519PublicJwkSchema>;

// --- POST /agent/v1/enroll ---
export const enrollRequestSchema = z.object({
  token: z.string().startsWith(ENROLLMENT_TOKEN_PREFIX).max(200),
  publicJwk: ed25519PublicJwkSchema,
  hostname: z.string().min(1).max(255),
  os: shortText(64),
  arch: shortText(64),
  version: shortText(64),
  labels: agentLabelsSchema.optional(),
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;
export const enrollResponseSchema = z.object({
  orgId: idSchema,
  agentId: idSchema,
  credential: z.string().startsWith(AGENT_CREDENTIAL_PREFIX),
  heartbeatSeconds: z.number().int().positive(),
  leaseWaitSeconds: z.number().int().positive(),
});
export type EnrollResponse = z.infer<typeof enrollResponseSchema>;

// --- POST /agent/v1/heartbeat ---
export const agentHeartbeatRequestSchema = z.object({
  version: shortText(64),
  hostname: z.string().min(1).max(255),
  os: shortText(64),
  arch: shortText(64),
  uptimeSeconds: z.number().nonnegative(),
  load: z.tuple([z.number().nonnegative(), z.number().nonnegative(), z.number().nonnegative()]),
  freeBytes: z.number().int().nonnegative(),
  runningJobs: z.array(idSchema).max(256),
});
export type AgentHeartbeatRequest = z.infer<typeof agentHeartbeatRequestSchema>;
export const agentHeartbeatResponseSchema = z.object({
  serverTime: timeSchema,
  heartbeatSeconds: z.number().int().positive(),
  cancelJobs: z.array(idSchema),
});
export type AgentHeartbeatResponse = z.infer<typeof agentHeartbeatResponseSchema>;

// --- PUT /agent/v1/inventory ---
export const inventoryResourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('path'), path: z.string().min(1).max(4096) }),
  z.object({
    kind: z.literal('postgres'),
    database: z.string().min(1).max(255),
    host: z.string().max(255).optional(),
    port: z.number().int().min(1).max(65535).optional(),
  }),
]);
export type InventoryResource = z.infer<typeof inventoryResourceSchema>;
export const inventoryRequestSchema = z.object({ resources: z.array(inventoryResourceSchema).max(1000) });
export type InventoryRequest = z.infer<typeof inventoryRequestSchema>;
export const inventoryResponseSchema = z.object({ accepted: z.number().int().nonnegative() });
export type InventoryResponse = z.infer<typeof inventoryResponseSchema>;

// --- Jobs ---
export const JOB_KINDS = ['init', 'backup', 'restore', 'check', 'replicate', 'forget', 'restore-test'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export const JOB_OUTCOMES = ['succeeded', 'partial', 'failed', 'cancelled'] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

/** The key-proxy operations a job token of each kind carries (docs/fleet.md §3 "Job kinds"). */
export const JOB_KIND_TOKEN_OPS = {
  init: { store: ['init'], copyStore: null },
  backup: { store: ['backup'], copyStore: null },
  restore: { store: ['restore'], copyStore: null },
  check: { store: ['check'], copyStore: null },
  replicate: { store: ['restore'], copyStore: ['backup'] },
  forget: { store: ['prune'], copyStore: null },
  'restore-test': { store: ['restore'], copyStore: null },
} as const satisfies Record<JobKind, { store: readonly string[]; copyStore: readonly string[] | null }>;

export const retentionSchema = z.object({
  keepLast: z.number().int().nonnegative().optional(),
  keepHourly: z.number().int().nonnegative().optional(),
  keepDaily: z.number().int().nonnegative().optional(),
  keepWeekly: z.number().int().nonnegative().optional(),
  keepMonthly: z.number().int().nonnegative().optional(),
  keepYearly: z.number().int().nonnegative().optional(),
});
export type RetentionWire = z.infer<typeof retentionSchema>;

export const initJobSpecSchema = z.object({});
/**
 * PostgreSQL names as the agent passes them to pg_dump: a database or role name of letters,
 * digits, `_`, `$` and `-` (so a database name can never be read by libpq as a connection string:
 * no `=`, no `://`), at most 63 bytes (PostgreSQL's NAMEDATALEN - 1).
 */
export const POSTGRES_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_$-]{0,62}$/;
/** A host name, an IP address (v6 in brackets or plain) or a Unix-socket directory (absolute). */
export const POSTGRES_HOST_PATTERN = /^(\/[A-Za-z0-9._/-]*|[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[?[0-9A-Fa-f:.]+\]?)$/;

/**
 * Where a postgres backup connects: what `pg_dump --host --port --username --dbname` take. There is
 * deliberately no password: credentials come only from the agent machine (~/.pgpass,
 * PGPASSFILE, peer authentication), never from the control plane. Unknown fields are refused.
 */
export const postgresConnectionSchema = z.strictObject({
  database: z.string().regex(POSTGRES_NAME_PATTERN, 'a PostgreSQL database name: letters, digits, "_", "$" and "-", at most 63'),
  host: z.string().regex(POSTGRES_HOST_PATTERN, 'a host name, an IP address or an absolute Unix-socket directory').optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().regex(POSTGRES_NAME_PATTERN, 'a PostgreSQL role name: letters, digits, "_", "$" and "-", at most 63').optional(),
});
export type PostgresConnection = z.infer<typeof postgresConnectionSchema>;

const backupTagsSchema = z.array(z.string().max(128)).max(64);
/** A backup of paths on the agent. */
export const pathBackupJobSpecSchema = z.object({
  resourceId: idSchema,
  paths: z.array(z.string().min(1).max(4096)).min(1).max(1000),
  excludes: z.array(z.string().max(4096)).max(1000),
  tags: backupTagsSchema,
  postgres: z.never().optional(),
});
/** A backup of one PostgreSQL database: pg_dump's custom format, recorded as `/postgres/<database>.dump`. */
export const postgresBackupJobSpecSchema = z.object({
  resourceId: idSchema,
  postgres: postgresConnectionSchema,
  tags: backupTagsSchema,
  paths: z.never().optional(),
  excludes: z.never().optional(),
});
/** Either kind of backup; a spec with both `paths` and `postgres` fits neither. */
export const backupJobSpecSchema = z.union([pathBackupJobSpecSchema, postgresBackupJobSpecSchema]);
export type PathBackupJobSpec = z.infer<typeof pathBackupJobSpecSchema>;
export type PostgresBackupJobSpec = z.infer<typeof postgresBackupJobSpecSchema>;

/** Where a postgres backup puts the dump in its snapshot. */
export function postgresDumpPath(database: string): string {
  return `/postgres/${database}.dump`;
}
export const restoreJobSpecSchema = z.object({ snapshotId: hex64Schema, path: z.string().max(4096), targetPath: z.string().min(1).max(4096) });
export const checkJobSpecSchema = z.object({ readData: z.boolean(), subsetPercent: z.number().gt(0).max(100).optional() });
export const replicateJobSpecSchema = z.object({ snapshotIds: z.array(hex64Schema).max(10_000) });
export const forgetJobSpecSchema = z.object({
  retention: retentionSchema,
  prune: z.boolean(),
  hostname: z.string().max(255).optional(),
  tags: z.array(z.string().max(128)).max(64).optional(),
});
export const restoreTestJobSpecSchema = z.object({ snapshotId: z.union([hex64Schema, z.literal('latest')]), resourceId: idSchema });

export const JOB_SPEC_SCHEMAS = {
  init: initJobSpecSchema,
  backup: backupJobSpecSchema,
  restore: restoreJobSpecSchema,
  check: checkJobSpecSchema,
  replicate: replicateJobSpecSchema,
  forget: forgetJobSpecSchema,
  'restore-test': restoreTestJobSpecSchema,
} as const satisfies Record<JobKind, z.ZodType>;
export type JobSpecOf<K extends JobKind> = z.infer<(typeof JOB_SPEC_SCHEMAS)[K]>;
export type InitJobSpec = JobSpecOf<'init'>;
export type BackupJobSpec = JobSpecOf<'backup'>;
export type RestoreJobSpec = JobSpecOf<'restore'>;
export type CheckJobSpec = JobSpecOf<'check'>;
export type ReplicateJobSpec = JobSpecOf<'replicate'>;
export type ForgetJobSpec = JobSpecOf<'forget'>;
export type RestoreTestJobSpec = JobSpecOf<'restore-test'>;

/** Validates a job's spec against its kind's schema (throws a ZodError when it does not fit). */
export function parseJobSpec<K extends JobKind>(kind: K, spec: unknown): JobSpecOf<K> {
  return JOB_SPEC_SCHEMAS[kind].parse(spec) as JobSpecOf<K>;
}

export const storeCredentialsSchema = z.object({
  accessKeyId: z.string().min(1).max(256),
  secretAccessKey: z.string().min(1).max(1024),
  sessionToken: z.string().max(8192).optional(),
  region: z.string().max(64).optional(),
  endpoint: z.string().max(2048).optional(),
});
export type StoreCredentials = z.infer<typeof storeCredentialsSchema>;

export const storeAccessSchema = z.object({
  /** the control plane's store row ID */
  id: idSchema,
  /** the Arca store ID (64 hex) */
  storeId: hex64Schema,
  url: z.string().min(1),
  keyProxyUrl: z.string().min(1),
  credentials: storeCredentialsSchema.nullable(),
});
export type StoreAccess = z.infer<typeof storeAccessSchema>;

export const leasedJobSchema = z.object({
  id: idSchema,
  kind: z.enum(JOB_KINDS),
  attempt: z.number().int().positive(),
  leaseExpiresAt: timeSchema,
  leaseSeconds: z.number().int().positive(),
  spec: z.record(z.string(), z.unknown()),
  store: storeAccessSchema,
  copyStore: storeAccessSchema.optional(),
  token: z.string().min(1),
  copyToken: z.string().min(1).optional(),
});
export type LeasedJob = z.infer<typeof leasedJobSchema>;

// --- POST /agent/v1/jobs/lease ---
export const leaseRequestSchema = z.object({
  slots: z.number().int().min(1).max(LEASE_MAX_SLOTS),
  waitSeconds: z.number().min(0).max(LEASE_MAX_WAIT_SECONDS),
});
export type LeaseRequest = z.infer<typeof leaseRequestSchema>;
export const leaseResponseSchema = z.object({ jobs: z.array(leasedJobSchema) });
export type LeaseResponse = z.infer<typeof leaseResponseSchema>;

export const progressSchema = z.object({
  phase: z.string().min(1).max(64),
  percent: z.number().min(0).max(100).optional(),
  bytesDone: z.number().nonnegative().optional(),
  bytesTotal: z.number().nonnegative().optional(),
  filesDone: z.number().int().nonnegative().optional(),
  filesTotal: z.number().int().nonnegative().optional(),
  /** bytes per second */
  rate: z.number().nonnegative().optional(),
});
export type Progress = z.infer<typeof progressSchema>;

export const jobLogLineSchema = z.object({
  time: timeSchema,
  level: z.enum(['debug', 'info', 'warn', 'error']),
  message: z.string().max(4000),
});
export type JobLogLine = z.infer<typeof jobLogLineSchema>;

// --- POST /agent/v1/jobs/{id}/heartbeat ---
export const jobHeartbeatRequestSchema = z.object({
  attempt: z.number().int().positive(),
  progress: progressSchema.optional(),
  logs: z.array(jobLogLineSchema).max(JOB_LOGS_PER_HEARTBEAT).optional(),
});
export type JobHeartbeatRequest = z.infer<typeof jobHeartbeatRequestSchema>;
export const jobHeartbeatResponseSchema = z.object({ leaseExpiresAt: timeSchema, cancelRequested: z.boolean() });
export type JobHeartbeatResponse = z.infer<typeof jobHeartbeatResponseSchema>;

// --- POST /agent/v1/jobs/{id}/token ---
export const jobTokenRequestSchema = z.object({ attempt: z.number().int().positive() });
export type JobTokenRequest = z.infer<typeof jobTokenRequestSchema>;
export const jobTokenResponseSchema = z.object({ token: z.string().min(1), copyToken: z.string().min(1).optional() });
export type JobTokenResponse = z.infer<typeof jobTokenResponseSchema>;

/** What an agent reports per snapshot: sizes and counts only, never file names or contents. */
export const snapshotMetaSchema = z.object({
  storeId: hex64Schema,
  snapshotId: hex64Schema,
  time: timeSchema,
  hostname: z.string().max(255),
  tags: z.array(z.string().max(128)).max(64),
  parent: hex64Schema.optional(),
  totalBytes: z.number().int().nonnegative(),
  fileCount: z.number().int().nonnegative(),
  dirCount: z.number().int().nonnegative(),
  newBytes: z.number().int().nonnegative(),
  storedBytes: z.number().int().nonnegative(),
  durationMs: z.number().int().nonnegative(),
});
export type SnapshotMeta = z.infer<typeof snapshotMetaSchema>;

export const jobErrorSchema = z.object({
  code: z.string().min(1).max(64),
  message: z.string().max(4000),
  retryable: z.boolean(),
});
export type JobError = z.infer<typeof jobErrorSchema>;

// --- POST /agent/v1/jobs/{id}/complete ---
export const jobCompleteRequestSchema = z.object({
  attempt: z.number().int().positive(),
  outcome: z.enum(JOB_OUTCOMES),
  error: jobErrorSchema.optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  snapshots: z.array(snapshotMetaSchema).max(10_000).optional(),
});
export type JobCompleteRequest = z.infer<typeof jobCompleteRequestSchema>;
export const jobCompleteResponseSchema = z.object({ recorded: z.literal(true), duplicate: z.boolean() });
export type JobCompleteResponse = z.infer<typeof jobCompleteResponseSchema>;
