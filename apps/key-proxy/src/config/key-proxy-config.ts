import { isIP } from 'node:net';
import { z } from 'zod';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import type { KekProviderName } from '../kek/kek-provider.ts';

/**
 * The key proxy's configuration, read once from the environment at start-up (docs/key-proxy.md
 * §4). One zod schema validates every variable; a bad configuration is refused with one line per
 * bad variable. There are no default secrets, and secrets are only ever read from files (or, for
 * AWS KMS, from the standard AWS credential chain): variables that would carry a secret in the
 * environment itself are refused.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type ProviderConfig =
  | { provider: 'local'; kekFile: string; previousKekFiles: string[] }
  | { provider: 'vault'; addr: string; tokenFile: string; mount: string; key: string; previousKeys: string[]; namespace?: string; caFile?: string }
  | { provider: 'aws-kms'; keyId: string; region: string; endpoint?: string }
  | { provider: 'pkcs11'; module: string; tokenLabel: string; pinFile: string; keyLabel: string };

export interface KeyProxyConfig {
  listen: { host: string; port: number };
  /** base URL agents use, without a trailing slash; undefined = http(s)://<listen address> once bound */
  publicUrl: string | undefined;
  dataDir: string;
  issuer: string;
  audience: string;
  jwks: { file: string } | { url: string };
  strict: boolean;
  kek: ProviderConfig;
  cache: { ttlSeconds: number; maxStores: number };
  rateLimit: { keysPerSecond: number; burst: number };
  audit: { file: string | undefined; url: string | undefined; tokenFile: string | undefined };
  tls: { certFile: string; keyFile: string } | undefined;
  allowPlainHttp: boolean;
  logLevel: LogLevel;
}

/** Every variable the proxy reads, with its help line (`arca-key-proxy serve --help`, docs). */
export const KEY_PROXY_ENV_HELP: ReadonlyArray<readonly [name: string, help: string]> = [
  ['ARCA_KP_LISTEN', 'host:port to listen on (default 127.0.0.1:8700; port 0 picks a free port)'],
  ['ARCA_KP_PUBLIC_URL', 'base URL agents use, checked against the proofs\' htu (default http(s)://<listen address>; required on a wildcard address)'],
  ['ARCA_KP_DATA_DIR', 'required: directory of the proxy\'s state (grants, created master keys, audit log); created 0700'],
  ['ARCA_KP_ISSUER', 'required: the control plane\'s job-token issuer (iss)'],
  ['ARCA_KP_AUDIENCE', 'job-token audience (default arca-key-proxy)'],
  ['ARCA_KP_JWKS_FILE', 'file with the control plane\'s JWKS (exactly one of ARCA_KP_JWKS_FILE, ARCA_KP_JWKS_URL)'],
  ['ARCA_KP_JWKS_URL', 'URL of the control plane\'s JWKS (fetched and cached)'],
  ['ARCA_KP_STRICT', 'true|false (default true): a key custodian must approve an agent key for a store (`grant approve`)'],
  ['ARCA_KP_PROVIDER', 'local|vault|aws-kms|pkcs11 (default local)'],
  ['ARCA_KP_LOCAL_KEK_FILE', 'local: the current KEK file (create one with `arca-key-proxy kek create-local`)'],
  ['ARCA_KP_LOCAL_PREVIOUS_KEK_FILES', 'local: comma-separated older KEK files still accepted for unwrap (rotation)'],
  ['ARCA_KP_VAULT_ADDR', 'vault: server URL'],
  ['ARCA_KP_VAULT_TOKEN_FILE', 'vault: file holding the Vault token'],
  ['ARCA_KP_VAULT_MOUNT', 'vault: transit mount path (default transit)'],
  ['ARCA_KP_VAULT_KEY', 'vault: transit key name'],
  ['ARCA_KP_VAULT_PREVIOUS_KEYS', 'vault: comma-separated older transit keys still accepted for unwrap (migration to another key)'],
  ['ARCA_KP_VAULT_NAMESPACE', 'vault: namespace (Vault Enterprise, optional)'],
  ['ARCA_KP_VAULT_CA_FILE', 'vault: PEM CA certificate to trust for ARCA_KP_VAULT_ADDR (optional)'],
  ['ARCA_KP_KMS_KEY_ID', 'aws-kms: key id, ARN or alias (credentials: the standard AWS chain)'],
  ['ARCA_KP_KMS_REGION', 'aws-kms: region (default: AWS_REGION or AWS_DEFAULT_REGION)'],
  ['ARCA_KP_KMS_ENDPOINT', 'aws-kms: endpoint URL (optional)'],
  ['ARCA_KP_PKCS11_MODULE', 'pkcs11: path of the PKCS#11 module (.so)'],
  ['ARCA_KP_PKCS11_TOKEN_LABEL', 'pkcs11: token label'],
  ['ARCA_KP_PKCS11_PIN_FILE', 'pkcs11: file holding the user PIN'],
  ['ARCA_KP_PKCS11_KEY_LABEL', 'pkcs11: label of the AES key'],
  ['ARCA_KP_CACHE_TTL_SECONDS', 'how long an unwrapped store key stays in memory (default 300)'],
  ['ARCA_KP_CACHE_MAX_STORES', 'at most this many stores\' keys in memory (default 1000)'],
  ['ARCA_KP_RATE_LIMIT_KEYS_PER_SECOND', 'keys per second per agent (default 200000)'],
  ['ARCA_KP_RATE_LIMIT_BURST', 'keys an idle agent may take at once (default: the per-second rate)'],
  ['ARCA_KP_AUDIT_FILE', 'append audit events to this JSON Lines file (optional)'],
  ['ARCA_KP_AUDIT_URL', 'POST audit events in batches to this URL (the control plane; optional)'],
  ['ARCA_KP_AUDIT_TOKEN_FILE', 'file holding the bearer token for ARCA_KP_AUDIT_URL'],
  ['ARCA_KP_TLS_CERT_FILE', 'PEM certificate chain: serve HTTPS (with ARCA_KP_TLS_KEY_FILE)'],
  ['ARCA_KP_TLS_KEY_FILE', 'PEM private key for ARCA_KP_TLS_CERT_FILE'],
  ['ARCA_KP_ALLOW_PLAIN_HTTP', 'true: allow plain HTTP on a non-loopback address (default false)'],
  ['ARCA_KP_LOG_LEVEL', 'debug|info|warn|error (default info)'],
];

const KNOWN = new Set(KEY_PROXY_ENV_HELP.map(([name]) => name));
/** Secrets must come from files: these are refused with the variable to use instead. */
const SECRET_IN_ENV: Record<string, string> = {
  ARCA_KP_VAULT_TOKEN: 'ARCA_KP_VAULT_TOKEN_FILE',
  ARCA_KP_PKCS11_PIN: 'ARCA_KP_PKCS11_PIN_FILE',
  ARCA_KP_AUDIT_TOKEN: 'ARCA_KP_AUDIT_TOKEN_FILE',
  ARCA_KP_LOCAL_KEK: 'ARCA_KP_LOCAL_KEK_FILE',
};

const optionalText = z
  .string()
  .transform((s) => s.trim())
  .optional()
  .transform((s) => (s === undefined || s === '' ? undefined : s));

const commaList = optionalText.transform((s) => (s === undefined ? [] : s.split(',').map((f) => f.trim()).filter((f) => f !== '')));

const boolean = (fallback: boolean) =>
  optionalText.pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }).optional())
    .transform((s) => (s === undefined ? fallback : s === 'true' || s === '1' || s === 'yes'));

const positiveInt = (fallback: number, max: number) =>
  optionalText
    .pipe(z.string().regex(/^\d+$/, 'must be a positive integer').optional())
    .transform((s) => (s === undefined ? fallback : Number(s)))
    .pipe(z.number().int().min(1, 'must be at least 1').max(max, `must be at most ${max}`));

const httpUrl = z.string().refine((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), 'must be an http(s) URL');

const listenSchema = optionalText.transform((s, ctx) => {
  const value = s ?? '127.0.0.1:8700';
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const host = m ? (m[1] ?? m[2])! : '';
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535 || (m[1] !== undefined && isIP(host) !== 6)) {
    ctx.addIssue({ code: 'custom', message: 'must be host:port (e.g. 127.0.0.1:8700, [::1]:8700, 0.0.0.0:8700; port 0 = any free port)' });
    return z.NEVER;
  }
  return { host, port };
});

const envSchema = z.object({
  ARCA_KP_LISTEN: listenSchema,
  ARCA_KP_PUBLIC_URL: optionalText.pipe(httpUrl.optional()),
  ARCA_KP_DATA_DIR: optionalText.pipe(z.string({ message: 'is required: the directory of the proxy\'s state' })),
  ARCA_KP_ISSUER: optionalText.pipe(z.string({ message: 'is required: the control plane\'s job-token issuer' })),
  ARCA_KP_AUDIENCE: optionalText.transform((s) => s ?? 'arca-key-proxy'),
  ARCA_KP_JWKS_FILE: optionalText,
  ARCA_KP_JWKS_URL: optionalText.pipe(httpUrl.optional()),
  ARCA_KP_STRICT: boolean(true),
  ARCA_KP_PROVIDER: optionalText.pipe(
    z.enum(['local', 'vault', 'aws-kms', 'pkcs11'], { message: 'must be local, vault, aws-kms or pkcs11' }).optional(),
  ).transform((s): KekProviderName => s ?? 'local'),
  ARCA_KP_LOCAL_KEK_FILE: optionalText,
  ARCA_KP_LOCAL_PREVIOUS_KEK_FILES: commaList,
  ARCA_KP_VAULT_ADDR: optionalText.pipe(httpUrl.optional()),
  ARCA_KP_VAULT_TOKEN_FILE: optionalText,
  ARCA_KP_VAULT_MOUNT: optionalText.transform((s) => (s ?? 'transit').replace(/^\/+|\/+$/g, '')),
  ARCA_KP_VAULT_KEY: optionalText,
  ARCA_KP_VAULT_PREVIOUS_KEYS: commaList,
  ARCA_KP_VAULT_NAMESPACE: optionalText,
  ARCA_KP_VAULT_CA_FILE: optionalText,
  ARCA_KP_KMS_KEY_ID: optionalText,
  ARCA_KP_KMS_REGION: optionalText,
  ARCA_KP_KMS_ENDPOINT: optionalText.pipe(httpUrl.optional()),
  ARCA_KP_PKCS11_MODULE: optionalText,
  ARCA_KP_PKCS11_TOKEN_LABEL: optionalText,
  ARCA_KP_PKCS11_PIN_FILE: optionalText,
  ARCA_KP_PKCS11_KEY_LABEL: optionalText,
  ARCA_KP_CACHE_TTL_SECONDS: positiveInt(300, 86_400),
  ARCA_KP_CACHE_MAX_STORES: positiveInt(1000, 1_000_000),
  ARCA_KP_RATE_LIMIT_KEYS_PER_SECOND: positiveInt(200_000, 1_000_000_000),
  ARCA_KP_RATE_LIMIT_BURST: optionalText
    .pipe(z.string().regex(/^\d+$/, 'must be a positive integer').optional())
    .transform((s) => (s === undefined ? undefined : Number(s)))
    .pipe(z.number().int().min(1, 'must be at least 1').max(1_000_000_000).optional()),
  ARCA_KP_AUDIT_FILE: optionalText,
  ARCA_KP_AUDIT_URL: optionalText.pipe(httpUrl.optional()),
  ARCA_KP_AUDIT_TOKEN_FILE: optionalText,
  ARCA_KP_TLS_CERT_FILE: optionalText,
  ARCA_KP_TLS_KEY_FILE: optionalText,
  ARCA_KP_ALLOW_PLAIN_HTTP: boolean(false),
  ARCA_KP_LOG_LEVEL: optionalText.pipe(
    z.enum(['debug', 'info', 'warn', 'error'], { message: 'must be debug, info, warn or error' }).optional(),
  ).transform((s): LogLevel => s ?? 'info'),
}).superRefine(
  // Runs even when some fields failed (`when`), so one start-up lists every problem: it reads the
  // values defensively (a failed field keeps its raw value).
  (env, ctx) => {
    const raw = env as unknown as Record<string, unknown>;
    const has = (name: string) => raw[name] !== undefined && !(typeof raw[name] === 'string' && (raw[name] as string).trim() === '');
    const need = (name: string, why: string) => {
      if (!has(name)) ctx.addIssue({ code: 'custom', path: [name], message: `is required ${why}` });
    };
    if (has('ARCA_KP_JWKS_FILE') === has('ARCA_KP_JWKS_URL')) {
      ctx.addIssue({ code: 'custom', path: ['ARCA_KP_JWKS_FILE'], message: 'set exactly one of ARCA_KP_JWKS_FILE and ARCA_KP_JWKS_URL (the control plane\'s token signing keys)' });
    }
    switch (raw.ARCA_KP_PROVIDER) {
      case 'local':
        need('ARCA_KP_LOCAL_KEK_FILE', 'with ARCA_KP_PROVIDER=local (create one with `arca-key-proxy kek create-local --out FILE`)');
        break;
      case 'vault':
        need('ARCA_KP_VAULT_ADDR', 'with ARCA_KP_PROVIDER=vault');
        need('ARCA_KP_VAULT_TOKEN_FILE', 'with ARCA_KP_PROVIDER=vault');
        need('ARCA_KP_VAULT_KEY', 'with ARCA_KP_PROVIDER=vault (the transit key name)');
        break;
      case 'aws-kms':
        need('ARCA_KP_KMS_KEY_ID', 'with ARCA_KP_PROVIDER=aws-kms');
        break;
      case 'pkcs11':
        need('ARCA_KP_PKCS11_MODULE', 'with ARCA_KP_PROVIDER=pkcs11');
        need('ARCA_KP_PKCS11_TOKEN_LABEL', 'with ARCA_KP_PROVIDER=pkcs11');
        need('ARCA_KP_PKCS11_PIN_FILE', 'with ARCA_KP_PROVIDER=pkcs11');
        need('ARCA_KP_PKCS11_KEY_LABEL', 'with ARCA_KP_PROVIDER=pkcs11');
        break;
    }
    const tls = has('ARCA_KP_TLS_CERT_FILE');
    if (tls !== has('ARCA_KP_TLS_KEY_FILE')) {
      ctx.addIssue({ code: 'custom', path: [tls ? 'ARCA_KP_TLS_KEY_FILE' : 'ARCA_KP_TLS_CERT_FILE'], message: 'is required: set both ARCA_KP_TLS_CERT_FILE and ARCA_KP_TLS_KEY_FILE, or neither' });
    }
    if (has('ARCA_KP_AUDIT_URL')) need('ARCA_KP_AUDIT_TOKEN_FILE', 'with ARCA_KP_AUDIT_URL (the bearer token the control plane expects)');
    const listen = raw.ARCA_KP_LISTEN;
    const host = typeof listen === 'object' && listen !== null ? (listen as { host: string }).host : undefined;
    if (host !== undefined && !tls && raw.ARCA_KP_ALLOW_PLAIN_HTTP !== true && !isLoopback(host)) {
      ctx.addIssue({
        code: 'custom', path: ['ARCA_KP_LISTEN'],
        message: `${host} is not a loopback address: serve HTTPS (ARCA_KP_TLS_CERT_FILE, ARCA_KP_TLS_KEY_FILE), or set ARCA_KP_ALLOW_PLAIN_HTTP=true behind a TLS-terminating proxy`,
      });
    }
    if (host !== undefined && isWildcard(host)) {
      need('ARCA_KP_PUBLIC_URL', `when listening on ${host} (the URL agents use, e.g. https://keyproxy.example.com)`);
    }
    const publicUrl = raw.ARCA_KP_PUBLIC_URL;
    if (typeof publicUrl === 'string' && URL.canParse(publicUrl)) {
      const u = new URL(publicUrl);
      if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') {
        ctx.addIssue({ code: 'custom', path: ['ARCA_KP_PUBLIC_URL'], message: 'must be a base URL without query, fragment or credentials' });
      }
    }
  },
  { when: () => true },
);

/** Parse the environment; throws KeyProxyError CONFIG_INVALID listing every bad variable. */
export function loadKeyProxyConfig(env: NodeJS.ProcessEnv): { config: KeyProxyConfig; warnings: string[] } {
  const problems: string[] = [];
  for (const [name, instead] of Object.entries(SECRET_IN_ENV)) {
    if (env[name] !== undefined) problems.push(`${name}: secrets are not read from the environment; put it in a file (mode 0600) and set ${instead}`);
  }
  const parsed = envSchema.safeParse(pick(env));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${String(issue.path[0] ?? 'environment')}: ${issue.message}`);
  }
  const kmsRegion = env.ARCA_KP_KMS_REGION?.trim() || env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || undefined;
  if (parsed.success && parsed.data.ARCA_KP_PROVIDER === 'aws-kms' && kmsRegion === undefined) {
    problems.push('ARCA_KP_KMS_REGION: is required with ARCA_KP_PROVIDER=aws-kms (or set AWS_REGION)');
  }
  if (problems.length > 0 || !parsed.success) {
    throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `invalid configuration:\n  ${[...new Set(problems)].join('\n  ')}`);
  }
  const e = parsed.data;
  const warnings = Object.keys(env)
    .filter((name) => name.startsWith('ARCA_KP_') && !KNOWN.has(name) && !(name in SECRET_IN_ENV))
    .map((name) => `unknown variable ${name} ignored (see arca-key-proxy serve --help)`);
  const keysPerSecond = e.ARCA_KP_RATE_LIMIT_KEYS_PER_SECOND;
  const config: KeyProxyConfig = {
    listen: e.ARCA_KP_LISTEN,
    publicUrl: e.ARCA_KP_PUBLIC_URL?.replace(/\/+$/, ''),
    dataDir: e.ARCA_KP_DATA_DIR,
    issuer: e.ARCA_KP_ISSUER,
    audience: e.ARCA_KP_AUDIENCE,
    jwks: e.ARCA_KP_JWKS_FILE !== undefined ? { file: e.ARCA_KP_JWKS_FILE } : { url: e.ARCA_KP_JWKS_URL! },
    strict: e.ARCA_KP_STRICT,
    kek: providerConfig(e, kmsRegion ?? ''),
    cache: { ttlSeconds: e.ARCA_KP_CACHE_TTL_SECONDS, maxStores: e.ARCA_KP_CACHE_MAX_STORES },
    rateLimit: { keysPerSecond, burst: e.ARCA_KP_RATE_LIMIT_BURST ?? keysPerSecond },
    audit: { file: e.ARCA_KP_AUDIT_FILE, url: e.ARCA_KP_AUDIT_URL, tokenFile: e.ARCA_KP_AUDIT_TOKEN_FILE },
    tls: e.ARCA_KP_TLS_CERT_FILE !== undefined ? { certFile: e.ARCA_KP_TLS_CERT_FILE, keyFile: e.ARCA_KP_TLS_KEY_FILE! } : undefined,
    allowPlainHttp: e.ARCA_KP_ALLOW_PLAIN_HTTP,
    logLevel: e.ARCA_KP_LOG_LEVEL,
  };
  return { config, warnings };
}

function providerConfig(e: z.infer<typeof envSchema>, kmsRegion: string): ProviderConfig {
  switch (e.ARCA_KP_PROVIDER) {
    case 'local':
      return { provider: 'local', kekFile: e.ARCA_KP_LOCAL_KEK_FILE!, previousKekFiles: e.ARCA_KP_LOCAL_PREVIOUS_KEK_FILES };
    case 'vault':
      return {
        provider: 'vault', addr: e.ARCA_KP_VAULT_ADDR!, tokenFile: e.ARCA_KP_VAULT_TOKEN_FILE!, mount: e.ARCA_KP_VAULT_MOUNT,
        key: e.ARCA_KP_VAULT_KEY!, previousKeys: e.ARCA_KP_VAULT_PREVIOUS_KEYS,
        ...(e.ARCA_KP_VAULT_NAMESPACE !== undefined ? { namespace: e.ARCA_KP_VAULT_NAMESPACE } : {}),
        ...(e.ARCA_KP_VAULT_CA_FILE !== undefined ? { caFile: e.ARCA_KP_VAULT_CA_FILE } : {}),
      };
    case 'aws-kms':
      return {
        provider: 'aws-kms', keyId: e.ARCA_KP_KMS_KEY_ID!, region: kmsRegion,
        ...(e.ARCA_KP_KMS_ENDPOINT !== undefined ? { endpoint: e.ARCA_KP_KMS_ENDPOINT } : {}),
      };
    case 'pkcs11':
      return {
        provider: 'pkcs11', module: e.ARCA_KP_PKCS11_MODULE!, tokenLabel: e.ARCA_KP_PKCS11_TOKEN_LABEL!,
        pinFile: e.ARCA_KP_PKCS11_PIN_FILE!, keyLabel: e.ARCA_KP_PKCS11_KEY_LABEL!,
      };
  }
}

function pick(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of KNOWN) out[name] = env[name];
  return out;
}

export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}
