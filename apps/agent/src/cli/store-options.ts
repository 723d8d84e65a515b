import { acquireLock, openBackend, Store, type StorageBackend } from '@arca/engine';
import type { CliContext } from './context.ts';
import { CliError } from './errors.ts';
import { keyProxyFlagsGiven, openManagedStoreForCli } from './key-proxy-options.ts';
import { getPassphrase } from './passphrase.ts';

export const STORE_OPTION_HELP = 'store location: a path, fs:///path or s3://bucket/prefix (env: ARCA_STORE)';

/** --store, else ARCA_STORE. */
export function storeLocation(ctx: CliContext): string {
  const location = ctx.globals.store ?? ctx.io.env.ARCA_STORE;
  if (!location) {
    throw new CliError('NO_STORE', 'no store given', { hint: 'pass --store PATH|fs:///path|s3://bucket/prefix or set ARCA_STORE' });
  }
  return location;
}

/** The backend of the store location, closed when the command ends. */
export function openStoreBackend(ctx: CliContext): StorageBackend {
  const backend = openBackend(storeLocation(ctx), ctx.io.env as NodeJS.ProcessEnv);
  ctx.onCleanup(() => backend.close());
  return backend;
}

/**
 * Open and unlock a passphrase store (for `arca key`, which needs the passphrase itself). The
 * config is read before asking for the passphrase, so a wrong location fails at once ("no Arca
 * store at ...; create one with `arca init`").
 */
export async function openStoreWithPassphrase(ctx: CliContext): Promise<{ store: Store; passphrase: string }> {
  const backend = openStoreBackend(ctx);
  const config = await Store.readConfig(backend);
  if (config.keyCustody.type === 'key-proxy') {
    throw new CliError('MANAGED_STORE', 'this store is managed by a key proxy: it has no passphrases or key slots', {
      hint: 'its master key is in the key proxy\'s custody; access is granted with job tokens from the control plane (and, in strict mode, approvals by the key custodian)',
    });
  }
  return openPassphraseStore(ctx, backend);
}

async function openPassphraseStore(ctx: CliContext, backend: StorageBackend): Promise<{ store: Store; passphrase: string }> {
  const flags = keyProxyFlagsGiven(ctx);
  if (flags.length > 0) {
    throw new CliError('NOT_MANAGED', `this store is opened with a passphrase, not through a key proxy: ${flags.join(', ')} do${flags.length === 1 ? 'es' : ''} not apply`, {
      hint: `drop ${flags.join(', ')} for this store`,
    });
  }
  const passphrase = await getPassphrase(ctx);
  const store = await Store.open(backend, { passphrase });
  return { store, passphrase };
}

/**
 * Open the store, whatever its key custody: a passphrase store with its passphrase, a managed
 * store through its key proxy (job token + agent key).
 */
export async function openStore(ctx: CliContext): Promise<Store> {
  const backend = openStoreBackend(ctx);
  const config = await Store.readConfig(backend);
  if (config.keyCustody.type === 'key-proxy') return openManagedStoreForCli(ctx, backend, config);
  return (await openPassphraseStore(ctx, backend)).store;
}

/** Open the store and load its index, for commands that read blobs (ls, cat, diff, find). */
export async function openStoreForReading(ctx: CliContext, operation: string): Promise<Store> {
  const store = await openStore(ctx);
  await takeSharedLock(ctx, store, operation);
  await store.loadIndex();
  return store;
}

/** A shared lock (keeps prune from deleting packs under us), released when the command ends. */
export async function takeSharedLock(ctx: CliContext, store: Store, operation: string): Promise<void> {
  const lock = await acquireLock(store, false, operation);
  ctx.onCleanup(() => lock.release());
}
