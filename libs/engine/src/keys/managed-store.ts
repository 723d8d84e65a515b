import type { AgentIdentity } from '@arca/crypto';
import type { StorageBackend } from '../backend/storage-backend.ts';
import type { ChunkerParams } from '../chunker/fastcdc.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { Store } from '../store/store.ts';
import { newStoreConfig, type StoreConfig } from '../store/store-config.ts';
import { decodeJobToken, KeyProxyClient } from './key-proxy-client.ts';
import { RemoteKeyProvider, type RemoteKeyProviderOptions } from './remote-key-provider.ts';

/**
 * Managed stores (docs/key-proxy.md): the master key is created and held by the key proxy, the
 * store's config carries only its envelope, and the agent works with keys the proxy issues.
 */
export interface KeyProxyConnection {
  /** the key proxy's base URL, as the agent was configured (never taken from an unverified config) */
  keyProxyUrl: string;
  /** the job token issued by the control plane */
  token: string;
  /** the agent's own key, to which the token is bound */
  identity: AgentIdentity;
  /** tuning and testing (see RemoteKeyProviderOptions) */
  provider?: Pick<RemoteKeyProviderOptions, 'maxItemsPerRequest' | 'maxRequestsInFlight' | 'lingerMs' | 'cacheEntries' | 'retryBudgetMs' | 'requestTimeoutMs'>;
}

export interface ManagedInitOptions extends KeyProxyConnection {
  chunker?: ChunkerParams;
  packSize?: number;
  zstdLevel?: number;
}

/**
 * Create a managed store. The store ID is the one the job token names (the control plane chose
 * it; the proxy checks the token). Order: no config yet → the proxy creates and wraps the master
 * key (`POST .../master-key`) → agent keys → config signed with K_mac, written last, so an
 * interruption leaves no store (but the store ID is used up: a retry needs a new one).
 */
export async function initManagedStore(backend: StorageBackend, options: ManagedInitOptions): Promise<Store> {
  const { store: storeId } = decodeJobToken(options.token);
  if (await backend.stat('config')) {
    throw new ArcaError(ArcaErrorCode.StoreExists, `a store already exists at ${backend.location}`, { hint: 'use it as it is, or choose another location' });
  }
  const tuning = options.provider ?? {};
  const client = new KeyProxyClient({
    url: options.keyProxyUrl,
    token: options.token,
    identity: options.identity,
    ...(tuning.retryBudgetMs !== undefined ? { retryBudgetMs: tuning.retryBudgetMs } : {}),
    ...(tuning.requestTimeoutMs !== undefined ? { requestTimeoutMs: tuning.requestTimeoutMs } : {}),
  });
  const what = 'to create the master key';
  let answer: { envelope?: unknown };
  try {
    // not repeated after a failure that may have reached the proxy: a second call answers 409
    answer = (await client.post(`/v1/stores/${storeId}/master-key`, {}, what, { idempotent: false })) as { envelope?: unknown };
  } finally {
    client.close();
  }
  const envelope = answer?.envelope;
  if (typeof envelope !== 'string' || envelope.length === 0 || envelope.length > 16_384) throw client.invalidResponse(what, 'no envelope');
  const config = newStoreConfig({
    id: storeId,
    keyCustody: { type: 'key-proxy', url: client.url, envelope },
    ...(options.chunker ? { chunker: options.chunker } : {}),
    ...(options.packSize !== undefined ? { packSize: options.packSize } : {}),
    ...(options.zstdLevel !== undefined ? { zstdLevel: options.zstdLevel } : {}),
  });
  const provider = await RemoteKeyProvider.create({ ...tuning, url: client.url, storeId, envelope, token: options.token, identity: options.identity });
  try {
    return await Store.initWithProvider(backend, config, provider);
  } catch (err) {
    await provider.close();
    throw err;
  }
}

/**
 * Open a managed store: agent keys from the proxy, then the config's MAC is checked with the
 * K_mac received (Store.openWithProvider). `config` is the store's config as already read (it is
 * read again and verified).
 */
export async function openManagedStore(backend: StorageBackend, options: KeyProxyConnection & { config?: StoreConfig }): Promise<Store> {
  const config = options.config ?? (await Store.readConfig(backend));
  const custody = config.keyCustody;
  if (custody.type !== 'key-proxy') {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'this store is not managed by a key proxy: it is opened with a passphrase');
  }
  const provider = await RemoteKeyProvider.create({
    ...(options.provider ?? {}),
    url: options.keyProxyUrl,
    storeId: config.id,
    envelope: custody.envelope,
    token: options.token,
    identity: options.identity,
  });
  try {
    return await Store.openWithProvider(backend, provider);
  } catch (err) {
    await provider.close();
    throw err;
  }
}
