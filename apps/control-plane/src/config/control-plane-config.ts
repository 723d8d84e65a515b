import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

/**
 * The whole configuration: one zod schema over the environment, validated once at start-up.
 * There are no default secrets. The credentials are the database URL's password, the key proxy's
 * ingestion token (configured as its SHA-256, never in clear) and the OIDC client secret, read
 * from a file (ARCA_CP_OIDC_CLIENT_SECRET_FILE) so it stays out of the environment, process
 * listings and crash dumps. docs/control-plane.md has the table of variables.
 */
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const postgresUrl = z
  .string()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), { message: 'must be a postgres:// or postgresql:// URL' })
  .refine((v) => URL.canParse(v), { message: 'is not a valid URL' });
const httpUrl = z
  .string()
  .refine((v) => URL.canParse(v), { message: 'is not a valid URL' })
  .refine((v) => /^https?:$/.test(new URL(v).protocol), { message: 'must be an http(s) URL' });
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
  /** OpenID Connect sign-in (all four or none): the provider's issuer URL (discovery) */
  ARCA_CP_OIDC_ISSUER: httpUrl.optional(),
  ARCA_CP_OIDC_CLIENT_ID: z.string().min(1).max(255).optional(),
  /** a file holding the client secret (the variable never holds the secret itself) */
  ARCA_CP_OIDC_CLIENT_SECRET_FILE: z.string().min(1).optional(),
  /** the control plane's public callback URL, registered at the provider: https://<host>/auth/callback */
  ARCA_CP_OIDC_REDIRECT_URL: httpUrl.refine((v) => new URL(v).pathname.endsWith('/auth/callback'), { message: 'must end with /auth/callback' }).optional(),
  ARCA_CP_OIDC_SCOPES: z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/, 'space-separated scopes').refine((v) => v.split(' ').includes('openid'), { message: 'must include openid' }).default('openid email profile'),
  /** a session ends this long after sign-in, whatever the activity */
  ARCA_CP_SESSION_TTL_HOURS: int(1, 720).default(12),
  /** ... or after this long without a request */
  ARCA_CP_SESSION_IDLE_MINUTES: int(5, 10_080).default(60),
  /** how long an authenticated principal is reused for the same credential (0: off) */
  ARCA_CP_AUTH_CACHE_MS: int(0, 60_000).default(5000),
  /** Secure cookies; may be false only when the redirect URL is http://localhost or a loopback address */
  ARCA_CP_COOKIE_SECURE: bool.default(true),
  /** the key proxy new stores name when createStore gives none (docs/fleet.md §1) */
  ARCA_CP_KEY_PROXY_URL: httpUrl.optional(),
  /** how often each replica's scheduler looks for due policies (fractions allowed, for tests) */
  ARCA_CP_SCHEDULER_TICK_SECONDS: z.coerce.number().min(0.05).max(3600).default(10),
  /** the URL agents reach this control plane at (proofs are checked against it); unset: the request's own origin */
  ARCA_CP_PUBLIC_URL: httpUrl.optional(),
  /** Ed25519 PKCS#8 PEM (0600) that signs job tokens; required with Postgres, generated in the data directory when embedded */
  ARCA_CP_JOB_SIGNING_KEY_FILE: z.string().min(1).optional(),
  /** 32 random bytes (0600) sealing store credentials (AES-256-GCM); required with Postgres, generated when embedded */
  ARCA_CP_SECRETS_KEY_FILE: z.string().min(1).optional(),
  ARCA_CP_JOB_TOKEN_ISSUER: z.string().min(1).max(200).default('arca-control-plane'),
  ARCA_CP_JOB_TOKEN_AUDIENCE: z.string().min(1).max(200).default('arca-key-proxy'),
  ARCA_CP_JOB_TOKEN_LIFETIME_SECONDS: int(60, 86_400).default(3600),
  /** a job lease lasts this long and is renewed by each job heartbeat */
  ARCA_CP_JOB_LEASE_SECONDS: int(1, 3600).default(60),
  ARCA_CP_JOB_MAX_ATTEMPTS: int(1, 100).default(3),
  /** first retry delay after an expired lease or retryable failure; doubles per attempt, at most 1 h */
  ARCA_CP_JOB_RETRY_BACKOFF_SECONDS: z.coerce.number().min(0).max(3600).default(30),
  /** how often each replica's sweeper requeues expired leases (fractions allowed, for tests) */
  ARCA_CP_LEASE_SWEEP_SECONDS: z.coerce.number().min(0.05).max(3600).default(5),
  /** long polls re-check the queue this often, so a lost notification costs latency, never a job */
  ARCA_CP_LEASE_RECHECK_SECONDS: z.coerce.number().min(0.05).max(60).default(2),
  ARCA_CP_AGENT_HEARTBEAT_SECONDS: int(1, 3600).default(30),
  /** an agent not seen for this long is shown offline */
  ARCA_CP_AGENT_OFFLINE_SECONDS: int(2, 86_400).default(90),
  /** heartbeats are buffered at most this long and written per organization in one statement */
  ARCA_CP_HEARTBEAT_FLUSH_MS: int(10, 10_000).default(1000),
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
  /** null: OIDC sign-in is off (API tokens only) */
  oidc: OidcConfig | null;
  sessions: { ttlMs: number; idleMs: number; cookieSecure: boolean };
  /** principal cache lifetime (0: off); the bound on how long a revocation takes on other replicas */
  authCacheMs: number;
  /** default key proxy of new stores; null: createStore must name one */
  keyProxyUrl: string | null;
  scheduler: { tickMs: number };
  fleet: FleetConfig;
}

/** The agent runtime (docs/fleet.md §2-4): agent API, job queue, job tokens, sealed store credentials. */
export interface FleetConfig {
  /** null: proofs are checked against the request's own origin */
  publicUrl: string | null;
  /**
   * Key files; in embedded mode generated (0600) in the data directory when missing. null (Postgres
   * without the variable): the features needing the key refuse with CONFIG_INVALID naming it.
   */
  jobSigningKeyFile: string | null;
  secretsKeyFile: string | null;
  generateMissingKeys: boolean;
  jobToken: { issuer: string; audience: string; lifetimeS: number };
  leaseSeconds: number;
  maxAttempts: number;
  retryBackoffMs: number;
  sweepMs: number;
  leaseRecheckMs: number;
  heartbeatSeconds: number;
  offlineAfterMs: number;
  heartbeatFlushMs: number;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUrl: string;
  scopes: string;
  /** the dashboard's origin (the redirect URL's): the only Origin accepted on cookie-authenticated requests */
  publicOrigin: string;
  /** plain-http provider: allowed only on a loopback address (a provider on the same machine) */
  allowHttpIssuer: boolean;
}

const OIDC_VARS = ['ARCA_CP_OIDC_ISSUER', 'ARCA_CP_OIDC_CLIENT_ID', 'ARCA_CP_OIDC_CLIENT_SECRET_FILE', 'ARCA_CP_OIDC_REDIRECT_URL'] as const;

function isLoopback(url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

function configError(fields: Array<{ path: string; message: string }>): ControlPlaneError {
  return new ControlPlaneError(ControlPlaneErrorCode.ConfigInvalid, `invalid configuration:\n${fields.map((f) => `  ${f.path}: ${f.message}`).join('\n')}`, { fields });
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
  const problems: Array<{ path: string; message: string }> = [];
  if (e.DATABASE_MIGRATION_URL != null && e.DATABASE_URL == null) problems.push({ path: 'DATABASE_MIGRATION_URL', message: 'is only used together with DATABASE_URL' });
  const oidc = oidcConfig(e, cwd, problems);
  if (!e.ARCA_CP_COOKIE_SECURE && (oidc == null || !oidc.publicOrigin.startsWith('http:') || !isLoopback(new URL(oidc.publicOrigin)))) {
    // a session cookie without Secure would travel in clear over any plain-http hop
    problems.push({ path: 'ARCA_CP_COOKIE_SECURE', message: 'may be false only when ARCA_CP_OIDC_REDIRECT_URL is http://localhost or a loopback address' });
  }
  if (problems.length > 0) throw configError(problems);
  const dataDir = resolve(cwd, e.ARCA_CP_DATA_DIR);
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
    oidc,
    sessions: { ttlMs: e.ARCA_CP_SESSION_TTL_HOURS * 3_600_000, idleMs: e.ARCA_CP_SESSION_IDLE_MINUTES * 60_000, cookieSecure: e.ARCA_CP_COOKIE_SECURE },
    authCacheMs: e.ARCA_CP_AUTH_CACHE_MS,
    keyProxyUrl: e.ARCA_CP_KEY_PROXY_URL ?? null,
    scheduler: { tickMs: Math.round(e.ARCA_CP_SCHEDULER_TICK_SECONDS * 1000) },
    fleet: {
      publicUrl: e.ARCA_CP_PUBLIC_URL?.replace(/\/+$/, '') ?? null,
      // with a shared database every replica must sign and seal with the same keys: never invented
      jobSigningKeyFile: e.ARCA_CP_JOB_SIGNING_KEY_FILE != null ? resolve(cwd, e.ARCA_CP_JOB_SIGNING_KEY_FILE) : e.DATABASE_URL == null ? `${dataDir}/job-signing-key.pem` : null,
      secretsKeyFile: e.ARCA_CP_SECRETS_KEY_FILE != null ? resolve(cwd, e.ARCA_CP_SECRETS_KEY_FILE) : e.DATABASE_URL == null ? `${dataDir}/secrets.key` : null,
      generateMissingKeys: e.DATABASE_URL == null,
      jobToken: { issuer: e.ARCA_CP_JOB_TOKEN_ISSUER, audience: e.ARCA_CP_JOB_TOKEN_AUDIENCE, lifetimeS: e.ARCA_CP_JOB_TOKEN_LIFETIME_SECONDS },
      leaseSeconds: e.ARCA_CP_JOB_LEASE_SECONDS,
      maxAttempts: e.ARCA_CP_JOB_MAX_ATTEMPTS,
      retryBackoffMs: Math.round(e.ARCA_CP_JOB_RETRY_BACKOFF_SECONDS * 1000),
      sweepMs: Math.round(e.ARCA_CP_LEASE_SWEEP_SECONDS * 1000),
      leaseRecheckMs: Math.round(e.ARCA_CP_LEASE_RECHECK_SECONDS * 1000),
      heartbeatSeconds: e.ARCA_CP_AGENT_HEARTBEAT_SECONDS,
      offlineAfterMs: e.ARCA_CP_AGENT_OFFLINE_SECONDS * 1000,
      heartbeatFlushMs: e.ARCA_CP_HEARTBEAT_FLUSH_MS,
    },
  };
}

/** All four OIDC variables or none; the secret is read from its file here, once. */
function oidcConfig(e: z.infer<typeof controlPlaneEnvSchema>, cwd: string, problems: Array<{ path: string; message: string }>): OidcConfig | null {
  const set = OIDC_VARS.filter((name) => e[name] != null);
  if (set.length === 0) return null;
  if (set.length < OIDC_VARS.length) {
    for (const name of OIDC_VARS.filter((n) => e[n] == null)) problems.push({ path: name, message: `is required when ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set (OIDC sign-in needs all four)` });
    return null;
  }
  const issuer = new URL(e.ARCA_CP_OIDC_ISSUER!);
  const redirect = new URL(e.ARCA_CP_OIDC_REDIRECT_URL!);
  if (issuer.protocol === 'http:' && !isLoopback(issuer)) problems.push({ path: 'ARCA_CP_OIDC_ISSUER', message: 'must be https:// (plain http only for a provider on a loopback address)' });
  if (redirect.protocol === 'http:' && !isLoopback(redirect)) problems.push({ path: 'ARCA_CP_OIDC_REDIRECT_URL', message: 'must be https:// (plain http only for localhost)' });
  let clientSecret = '';
  try {
    clientSecret = readFileSync(resolve(cwd, e.ARCA_CP_OIDC_CLIENT_SECRET_FILE!), 'utf8').trim();
    if (clientSecret === '') problems.push({ path: 'ARCA_CP_OIDC_CLIENT_SECRET_FILE', message: 'the file is empty' });
  } catch (err) {
    problems.push({ path: 'ARCA_CP_OIDC_CLIENT_SECRET_FILE', message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
  }
  return {
    // kept exactly as written: discovery requires the provider's `issuer` to be this string
    issuer: e.ARCA_CP_OIDC_ISSUER!,
    clientId: e.ARCA_CP_OIDC_CLIENT_ID!,
    clientSecret,
    redirectUrl: redirect.href,
    scopes: e.ARCA_CP_OIDC_SCOPES,
    publicOrigin: redirect.origin,
    allowHttpIssuer: issuer.protocol === 'http:',
  };
}

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}
