import { readFile } from 'node:fs/promises';
import { ArcaError, ArcaErrorCode, DEFAULT_RETRY_BUDGET_MS, normalizeKeyProxyUrl, openBackend, openManagedStore, Store } from '@arca/engine';
import type { CliContext } from './context.ts';
import { CliError } from './errors.ts';
import { agentKeyFile, normalizeUrlOption, readAgentIdentity } from './key-proxy-options.ts';
import { readPassphraseFile } from './passphrase.ts';

/**
 * The second store of `arca sync` (`--to`): opened with its own credentials, never the source's.
 * A passphrase store takes `--to-passphrase-file`, ARCA_TO_PASSPHRASE_FILE or ARCA_TO_PASSPHRASE;
 * a managed one its own key proxy URL and job token (`--to-key-proxy`, `--to-key-proxy-token-file`,
 * or ARCA_TO_KEY_PROXY_URL / ARCA_TO_KEY_PROXY_TOKEN_FILE / ARCA_TO_KEY_PROXY_TOKEN) and the same
 * agent key as the source (a job token is bound to the agent, not to a store).
 */
export interface DestinationOptions {
  to: string;
  toPassphraseFile?: string;
  toKeyProxy?: string;
  toKeyProxyTokenFile?: string;
}

export async function openDestinationStore(ctx: CliContext, options: DestinationOptions): Promise<Store> {
  const backend = openBackend(options.to, ctx.io.env as NodeJS.ProcessEnv);
  ctx.onCleanup(() => backend.close());
  const config = await Store.readConfig(backend);
  const env = ctx.io.env;
  if (config.keyCustody.type === 'key-proxy') {
    if (options.toPassphraseFile) {
      throw new CliError('MANAGED_STORE', 'the destination is managed by a key proxy: --to-passphrase-file does not apply', {
        hint: 'give --to-key-proxy-token-file (a job token for the destination) instead',
      });
    }
    const named = normalizeKeyProxyUrl(config.keyCustody.url, { allowHttp: true });
    let url: string;
    if (options.toKeyProxy) url = normalizeUrlOption(ctx, options.toKeyProxy);
    else if (env.ARCA_TO_KEY_PROXY_URL) {
      url = normalizeUrlOption(ctx, env.ARCA_TO_KEY_PROXY_URL);
      if (url !== named) {
        throw new ArcaError(ArcaErrorCode.KeyProxyMismatch, `the destination's config names the key proxy ${named}, but ARCA_TO_KEY_PROXY_URL is ${url}`, {
          hint: 'if the key proxy has moved, pass --to-key-proxy URL; otherwise the config may have been tampered with',
        });
      }
    } else {
      throw new CliError('NO_KEY_PROXY_URL', `the destination is managed by the key proxy at ${named}, and no key proxy is configured for it`, {
        hint: 'pass --to-key-proxy URL or set ARCA_TO_KEY_PROXY_URL (the URL in a store\'s config is not trusted by itself)',
      });
    }
    const token = await destinationToken(ctx, options);
    const identity = await readAgentIdentity(agentKeyFile(ctx));
    const store = await openManagedStore(backend, { keyProxyUrl: url, token, identity, config, provider: { retryBudgetMs: DEFAULT_RETRY_BUDGET_MS } });
    ctx.onCleanup(() => store.keys.close?.());
    return store;
  }
  if (options.toKeyProxy || options.toKeyProxyTokenFile) {
    throw new CliError('NOT_MANAGED', 'the destination is opened with a passphrase: --to-key-proxy and --to-key-proxy-token-file do not apply', {
      hint: 'give --to-passphrase-file or ARCA_TO_PASSPHRASE instead',
    });
  }
  let passphrase: string;
  if (options.toPassphraseFile) passphrase = await readPassphraseFile(options.toPassphraseFile, 'destination passphrase file');
  else if (env.ARCA_TO_PASSPHRASE_FILE) passphrase = await readPassphraseFile(env.ARCA_TO_PASSPHRASE_FILE, 'ARCA_TO_PASSPHRASE_FILE');
  else if (env.ARCA_TO_PASSPHRASE) passphrase = env.ARCA_TO_PASSPHRASE;
  else {
    throw new CliError('NO_PASSPHRASE', 'no passphrase given for the destination store', {
      hint: 'pass --to-passphrase-file FILE, or set ARCA_TO_PASSPHRASE_FILE or ARCA_TO_PASSPHRASE',
    });
  }
  ctx.out.addSecret(passphrase);
  return Store.open(backend, { passphrase });
}

async function destinationToken(ctx: CliContext, options: DestinationOptions): Promise<string> {
  const env = ctx.io.env;
  const file = options.toKeyProxyTokenFile ?? env.ARCA_TO_KEY_PROXY_TOKEN_FILE;
  let token: string | undefined;
  if (file) {
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CliError('JOB_TOKEN_FILE', `cannot read the destination's job token file ${file}${code ? ` (${code})` : ''}`, { hint: 'check the path and its permissions' });
    }
  } else {
    token = env.ARCA_TO_KEY_PROXY_TOKEN?.trim();
  }
  if (!token) {
    throw new CliError('NO_JOB_TOKEN', 'no job token given for the destination store', {
      hint: 'pass --to-key-proxy-token-file FILE, or set ARCA_TO_KEY_PROXY_TOKEN_FILE or ARCA_TO_KEY_PROXY_TOKEN (a token with the backup operation for the destination)',
    });
  }
  ctx.out.addSecret(token);
  return token;
}
