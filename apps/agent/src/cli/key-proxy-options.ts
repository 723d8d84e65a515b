import { readFile, stat } from 'node:fs/promises';
import { agentIdentityFromPem, type AgentIdentity } from '@arca/crypto';
import {
  ArcaError,
  ArcaErrorCode,
  DEFAULT_RETRY_BUDGET_MS,
  normalizeKeyProxyUrl,
  openManagedStore,
  type KeyProxyConnection,
  type StorageBackend,
  type Store,
  type StoreConfig,
} from '@arca/engine';
import type { CliContext } from './context.ts';
import { CliError } from './errors.ts';

/**
 * Managed stores (docs/key-proxy.md, "Agent side"): where the agent takes the key proxy URL, the
 * job token and its own key from.
 *
 * The key proxy URL comes from the agent's own configuration (--key-proxy or ARCA_KEY_PROXY_URL),
 * never from the store's `config` alone: the config is authenticated only with K_mac, which the
 * proxy hands out, so a `url` rewritten by someone with write access to the store could send the
 * agent to a proxy of their own, whose keys would then authenticate their forged config — and the
 * agent would encrypt the next backup with keys the attacker knows.
 */

const HOW_TO_GIVE_TOKEN = 'pass --key-proxy-token-file FILE, or set ARCA_KEY_PROXY_TOKEN_FILE or ARCA_KEY_PROXY_TOKEN (the control plane issues job tokens)';
const HOW_TO_GIVE_KEY = 'pass --agent-key FILE or set ARCA_AGENT_KEY_FILE; create a key with `arca agent keygen --out FILE`';

function truthy(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value.trim());
}

export function normalizeUrlOption(ctx: CliContext, url: string): string {
  return normalizeKeyProxyUrl(url, { allowHttp: truthy(ctx.io.env.ARCA_KEY_PROXY_ALLOW_HTTP) });
}

/** The URL in a config, printable (it is untrusted: never echo control characters). */
function describeConfigUrl(url: unknown): string {
  if (typeof url !== 'string') return '(none)';
  try {
    return normalizeKeyProxyUrl(url, { allowHttp: true });
  } catch {
    return JSON.stringify(url.slice(0, 200));
  }
}

/** Whether any key-proxy option was given on the command line (not via the environment). */
export function keyProxyFlagsGiven(ctx: CliContext): string[] {
  const g = ctx.globals;
  return [g.keyProxy ? '--key-proxy' : '', g.keyProxyTokenFile ? '--key-proxy-token-file' : '', g.agentKey ? '--agent-key' : ''].filter(Boolean);
}

/** --key-proxy, else ARCA_KEY_PROXY_URL, checked against the URL the store's config names. */
export function keyProxyUrlForStore(ctx: CliContext, configUrl: string): string {
  const named = describeConfigUrl(configUrl);
  if (ctx.globals.keyProxy) {
    const url = normalizeUrlOption(ctx, ctx.globals.keyProxy);
    if (url !== named) ctx.out.warn(`the store's config names the key proxy ${named}; using ${url} as given by --key-proxy`);
    return url;
  }
  const fromEnv = ctx.io.env.ARCA_KEY_PROXY_URL;
  if (fromEnv) {
    const url = normalizeUrlOption(ctx, fromEnv);
    if (url !== named) {
      throw new ArcaError(ArcaErrorCode.KeyProxyMismatch, `the store's config names the key proxy ${named}, but ARCA_KEY_PROXY_URL is ${url}`, {
        hint:
          'if the key proxy has moved, pass --key-proxy URL to use it explicitly; otherwise the config may have been tampered with: ' +
          'do not use this store until that is cleared up',
      });
    }
    return url;
  }
  throw new CliError('NO_KEY_PROXY_URL', `this store is managed by the key proxy at ${named}, and no key proxy is configured for this agent`, {
    hint: 'pass --key-proxy URL or set ARCA_KEY_PROXY_URL (the URL in the store\'s config is not trusted by itself: see docs/key-proxy.md, "Agent side")',
  });
}

/** The job token: --key-proxy-token-file, else ARCA_KEY_PROXY_TOKEN_FILE, else ARCA_KEY_PROXY_TOKEN. */
export async function readJobToken(ctx: CliContext): Promise<string> {
  const { io, globals } = ctx;
  let token: string;
  if (globals.keyProxyTokenFile) token = await readTokenFile(globals.keyProxyTokenFile, '--key-proxy-token-file');
  else if (io.env.ARCA_KEY_PROXY_TOKEN_FILE) token = await readTokenFile(io.env.ARCA_KEY_PROXY_TOKEN_FILE, 'ARCA_KEY_PROXY_TOKEN_FILE');
  else if (io.env.ARCA_KEY_PROXY_TOKEN?.trim()) token = io.env.ARCA_KEY_PROXY_TOKEN.trim();
  else throw new CliError('NO_JOB_TOKEN', 'no job token given: a store managed by a key proxy needs one', { hint: HOW_TO_GIVE_TOKEN });
  ctx.out.addSecret(token);
  return token;
}

async function readTokenFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError('JOB_TOKEN_FILE', `cannot read the job token file ${file} (${what}${code ? `: ${code}` : ''})`, { hint: 'check the path and its permissions' });
  }
  const token = text.trim();
  if (token.length === 0) throw new CliError('JOB_TOKEN_FILE', `the job token file ${file} is empty`, { hint: 'write the token the control plane issued into it' });
  return token;
}

/** The agent key file: --agent-key, else ARCA_AGENT_KEY_FILE. */
export function agentKeyFile(ctx: CliContext): string {
  const file = ctx.globals.agentKey ?? ctx.io.env.ARCA_AGENT_KEY_FILE;
  if (!file) throw new CliError('NO_AGENT_KEY', 'no agent key given: a store managed by a key proxy needs this agent\'s key', { hint: HOW_TO_GIVE_KEY });
  return file;
}

/** Read a PKCS#8 PEM Ed25519 private key, refusing a file other users can access. */
export async function readAgentIdentity(file: string): Promise<AgentIdentity> {
  let pem: Buffer;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new CliError('AGENT_KEY_PERMISSIONS', `the agent key file ${file} is accessible by other users (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')})`, {
        hint: `make it private: chmod 600 ${file}`,
      });
    }
    pem = await readFile(file);
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError('AGENT_KEY_FILE', `cannot read the agent key file ${file}${code ? ` (${code})` : ''}`, {
      hint: code === 'ENOENT' ? `check the path, or create a key with \`arca agent keygen --out ${file}\`` : 'check the path and its permissions',
    });
  }
  try {
    return agentIdentityFromPem(pem);
  } catch {
    throw new CliError('AGENT_KEY_INVALID', `${file} is not an Ed25519 private key in PKCS#8 PEM`, { hint: 'create an agent key with `arca agent keygen --out FILE`' });
  } finally {
    pem.fill(0);
  }
}

function retryBudgetMs(ctx: CliContext): number {
  const value = ctx.io.env.ARCA_KEY_PROXY_RETRY_SECONDS;
  if (value === undefined || value.trim() === '') return DEFAULT_RETRY_BUDGET_MS;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 86_400) {
    throw new CliError('INVALID_ARGUMENT', `ARCA_KEY_PROXY_RETRY_SECONDS must be a number of seconds (0 to 86400), not "${value.slice(0, 40)}"`);
  }
  return seconds * 1000;
}

/** URL, token and agent key for one command. */
export async function keyProxyConnection(ctx: CliContext, url: string): Promise<KeyProxyConnection> {
  const token = await readJobToken(ctx);
  const identity = await readAgentIdentity(agentKeyFile(ctx));
  return { keyProxyUrl: url, token, identity, provider: { retryBudgetMs: retryBudgetMs(ctx) } };
}

/** Refuse passphrase options for a managed store. */
export function rejectPassphraseOptions(ctx: CliContext, what: string): void {
  if (ctx.globals.passphraseFile) {
    throw new CliError('MANAGED_STORE', `${what} is managed by a key proxy: it has no passphrase, so --passphrase-file does not apply`, {
      hint: 'drop --passphrase-file; give the job token (--key-proxy-token-file) and the agent key (--agent-key) instead',
    });
  }
}

/** Open a managed store through its key proxy; the keys are zeroed when the command ends. */
export async function openManagedStoreForCli(ctx: CliContext, backend: StorageBackend, config: StoreConfig): Promise<Store> {
  if (config.keyCustody.type !== 'key-proxy') throw new Error('not a managed store');
  rejectPassphraseOptions(ctx, 'this store');
  const url = keyProxyUrlForStore(ctx, config.keyCustody.url);
  const connection = await keyProxyConnection(ctx, url);
  const store = await openManagedStore(backend, { ...connection, config });
  ctx.onCleanup(() => store.keys.close?.());
  return store;
}
