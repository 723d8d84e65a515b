import { resolve } from 'node:path';
import { z } from 'zod';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

/**
 * The whole configuration: one zod schema over the environment, validated once at start-up.
 * There are no default secrets; the only credentials are the database URL's password and the
 * key proxy's ingestion token, and the latter is configured as its SHA-256, never in clear.
 * docs/control-plane.md has the table of variables.
 */
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const postgresUrl = z
  .string()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), { message: 'must be a postgres:// or postgresql:// URL' })
  .refine((v) => URL.canParse(v), { message: 'is not a valid URL' });
const sha256List = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))
  .pipe(z.array(z.string().regex(/^[0-9a-f]{64}$/, 'each entry must be a SHA-256 digest in hex (64 characters)')).min(1));

export const controlPlaneEnvSchema = z.object({
  ARCA_CP_HOST: z.string().min(1).default('127.0.0.1'),
  ARCA_CP_PORT: int(0, 65535).default(8080),
  /** Postgres URL of the runtime role (member of arca_app, no BYPASSRLS). Unset: embedded PGlite. */
  DATABASE_URL: postgresUrl.optional(),
  /** Postgres URL of the schema owner, used only by `migrate` / `--migrate`. Default: DATABASE_URL. */
  DATABASE_MIGRATION_URL: postgresUrl.optional(),
  ARCA_CP_DB_POOL_SIZE: int(1, 200).default(10),
  /** embedded mode's data directory */
  ARCA_CP_DATA_DIR: z.string().min(1).default('.arca-data/control-plane'),
  ARCA_CP_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** request bodies above this are refused with 413 */
  ARCA_CP_MAX_BODY_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  ARCA_CP_GRAPHQL_MAX_DEPTH: int(2, 50).default(10),
  ARCA_CP_GRAPHQL_MAX_COMPLEXITY: int(10, 100_000).default(1000),
  /** SHA-256 (hex) of the key proxy's audit token(s), comma-separated for rotation. Unset: ingestion off. */
  ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256: sha256List.optional(),
  ARCA_CP_SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),
  /** trust X-Forwarded-* (only behind a proxy that sets them) */
  ARCA_CP_TRUST_PROXY: bool.default(false),
});

export interface ControlPlaneConfig {
  host: string;
  port: number;
  database: { kind: 'postgres'; url: string; migrationUrl: string; poolSize: number } | { kind: 'pglite'; dataDir: string };
  logLevel: z.infer<typeof controlPlaneEnvSchema>['ARCA_CP_LOG_LEVEL'];
  maxBodyBytes: number;
  graphql: { maxDepth: number; maxComplexity: number };
  keyProxyAuditTokenSha256: string[];
  shutdownTimeoutMs: number;
  trustProxy: boolean;
}

/** Parses the environment; throws CONFIG_INVALID listing every bad variable at once. */
export function loadControlPlaneConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): ControlPlaneConfig {
  // empty variables count as unset (a common artefact of env files and Helm templates)
  const present = Object.fromEntries(Object.entries(env).filter(([k, v]) => k in controlPlaneEnvSchema.shape && v !== ''));
  const parsed = controlPlaneEnvSchema.safeParse(present);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((issue) => ({ path: String(issue.path[0] ?? '(environment)'), message: issue.message }));
    throw new ControlPlaneError(
      ControlPlaneErrorCode.ConfigInvalid,
      `invalid configuration:\n${fields.map((f) => `  ${f.path}: ${f.message}`).join('\n')}`,
      { fields },
    );
  }
  const e = parsed.data;
  if (e.DATABASE_MIGRATION_URL != null && e.DATABASE_URL == null) {
    const fields = [{ path: 'DATABASE_MIGRATION_URL', message: 'is only used together with DATABASE_URL' }];
    throw new ControlPlaneError(ControlPlaneErrorCode.ConfigInvalid, `invalid configuration:\n  ${fields[0]!.path}: ${fields[0]!.message}`, { fields });
  }
  return {
    host: e.ARCA_CP_HOST,
    port: e.ARCA_CP_PORT,
    database:
      e.DATABASE_URL != null
        ? { kind: 'postgres', url: e.DATABASE_URL, migrationUrl: e.DATABASE_MIGRATION_URL ?? e.DATABASE_URL, poolSize: e.ARCA_CP_DB_POOL_SIZE }
        : { kind: 'pglite', dataDir: resolve(cwd, e.ARCA_CP_DATA_DIR) },
    logLevel: e.ARCA_CP_LOG_LEVEL,
    maxBodyBytes: e.ARCA_CP_MAX_BODY_BYTES,
    graphql: { maxDepth: e.ARCA_CP_GRAPHQL_MAX_DEPTH, maxComplexity: e.ARCA_CP_GRAPHQL_MAX_COMPLEXITY },
    keyProxyAuditTokenSha256: e.ARCA_CP_KEY_PROXY_AUDIT_TOKEN_SHA256 ?? [],
    shutdownTimeoutMs: e.ARCA_CP_SHUTDOWN_TIMEOUT_MS,
    trustProxy: e.ARCA_CP_TRUST_PROXY,
  };
}

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}
