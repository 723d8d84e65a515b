import { acquireLock, openBackend, Store, type StorageBackend } from '@arca/engine';
import type { CliContext } from './context.ts';
import { CliError } from './errors.ts';
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
 * Open and unlock the store. The config is read before asking for the passphrase, so a wrong
 * location fails at once ("no Arca store at ...; create one with `arca init`").
 */
export async function openStoreWithPassphrase(ctx: CliContext): Promise<{ store: Store; passphrase: string }> {
  const backend = openStoreBackend(ctx);
  await Store.readConfig(backend);
  const passphrase = await getPassphrase(ctx);
  const store = await Store.open(backend, { passphrase });
  return { store, passphrase };
}

export async function openStore(ctx: CliContext): Promise<Store> {
  return (await openStoreWithPassphrase(ctx)).store;
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
