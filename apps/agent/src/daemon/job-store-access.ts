import type { AgentIdentity } from '@arca/crypto';
import type { StoreAccess } from '@arca/contracts';
import {
  ArcaError,
  ArcaErrorCode,
  initManagedStore,
  normalizeKeyProxyUrl,
  openBackend,
  openManagedStore,
  RemoteKeyProvider,
  Store,
  type StorageBackend,
} from '@arca/engine';

/**
 * Opening a job's stores: the backend from the lease's StoreAccess (S3 credentials go to the
 * backend only, never into the process environment or a file), keys through the key proxy with
 * the job token, which lives in memory only.
 */
export interface OpenedStore {
  store: Store;
  /** switch to a refreshed job token */
  setToken(token: string): void;
  close(): Promise<void>;
}

export interface StoreAccessOptions {
  identity: AgentIdentity;
  allowHttp: boolean;
  /** how long the key provider retries an unreachable proxy */
  retryBudgetMs?: number;
}

function backendOf(access: StoreAccess): StorageBackend {
  const env: NodeJS.ProcessEnv = {};
  const c = access.credentials;
  if (c) {
    env.AWS_ACCESS_KEY_ID = c.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = c.secretAccessKey;
    if (c.sessionToken) env.AWS_SESSION_TOKEN = c.sessionToken;
    if (c.region) env.AWS_REGION = c.region;
    if (c.endpoint) env.ARCA_S3_ENDPOINT = c.endpoint;
  }
  return openBackend(access.url, env);
}

function provider(options: StoreAccessOptions): { retryBudgetMs?: number } {
  return options.retryBudgetMs !== undefined ? { retryBudgetMs: options.retryBudgetMs } : {};
}

/** `init` jobs: create the managed store the job token names. */
export async function initJobStore(access: StoreAccess, token: string, options: StoreAccessOptions): Promise<OpenedStore> {
  const backend = backendOf(access);
  try {
    const keyProxyUrl = normalizeKeyProxyUrl(access.keyProxyUrl, { allowHttp: options.allowHttp });
    const store = await initManagedStore(backend, { keyProxyUrl, token, identity: options.identity, provider: provider(options) });
    return opened(store, backend);
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }
}

/** Every other job: open the existing store through the key proxy the control plane names. */
export async function openJobStore(access: StoreAccess, token: string, options: StoreAccessOptions): Promise<OpenedStore> {
  const backend = backendOf(access);
  try {
    const config = await Store.readConfig(backend);
    if (config.keyCustody.type !== 'key-proxy') {
      throw new ArcaError(ArcaErrorCode.InvalidArgument, `store ${access.storeId.slice(0, 12)} is a passphrase store: the agent daemon works only with stores managed by a key proxy`);
    }
    if (config.id !== access.storeId) {
      throw new ArcaError(ArcaErrorCode.ConfigTampered, `the store at ${access.url} has ID ${config.id.slice(0, 12)}, not ${access.storeId.slice(0, 12)} as the control plane says`, {
        hint: 'check the store\'s URL in the control plane',
      });
    }
    // the URL comes from the control plane (this agent's configuration), never from the config alone
    const keyProxyUrl = normalizeKeyProxyUrl(access.keyProxyUrl, { allowHttp: options.allowHttp });
    const named = normalizeKeyProxyUrl(config.keyCustody.url, { allowHttp: true });
    if (named !== keyProxyUrl) {
      throw new ArcaError(ArcaErrorCode.KeyProxyMismatch, `the store's config names the key proxy ${named}, but the control plane says ${keyProxyUrl}`, {
        hint: 'if the key proxy has moved, update the store in the control plane; otherwise the config may have been tampered with',
      });
    }
    const store = await openManagedStore(backend, { keyProxyUrl, token, identity: options.identity, config, provider: provider(options) });
    return opened(store, backend);
  } catch (err) {
    await backend.close().catch(() => undefined);
    throw err;
  }
}

function opened(store: Store, backend: StorageBackend): OpenedStore {
  return {
    store,
    setToken: (token) => {
      if (store.keys instanceof RemoteKeyProvider) store.keys.setToken(token);
    },
    close: async () => {
      await store.keys.close?.();
      await backend.close();
    },
  };
}
