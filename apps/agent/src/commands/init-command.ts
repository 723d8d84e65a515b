import { ArcaError, ArcaErrorCode, initManagedStore, Store } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import type { CliContext } from '../cli/context.ts';
import { UsageError } from '../cli/errors.ts';
import { keyProxyConnection, normalizeUrlOption } from '../cli/key-proxy-options.ts';
import { integer, KDF_LIMITS } from '../cli/option-parsers.ts';
import { getPassphrase } from '../cli/passphrase.ts';
import { openStoreBackend } from '../cli/store-options.ts';

interface InitOptions {
  kdfMemory?: number;
  kdfIterations?: number;
  kdfParallelism?: number;
  compressionLevel?: number;
  packSize?: number;
}

export function registerInitCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('init')
    .description('create a new, empty store: protected by a passphrase, or managed by a key proxy with --key-proxy')
    .option('--kdf-memory <KiB>', 'Argon2id memory cost of the passphrase key slot, in KiB (default 65536; 8192 to 4194304)', integer(...KDF_LIMITS.memoryKiB))
    .option('--kdf-iterations <n>', 'Argon2id iterations (default 3; 1 to 64)', integer(...KDF_LIMITS.iterations))
    .option('--kdf-parallelism <n>', 'Argon2id lanes (default 4; 1 to 16)', integer(...KDF_LIMITS.parallelism))
    .option('--compression-level <n>', 'zstd level for the store, 0 (off) to 19 (default 3; 1 is faster, stores a few % more)', integer(0, 19))
    .option('--pack-size <MiB>', 'target pack size in MiB (default 16; larger means fewer objects on S3; 1 to 1024)', integer(1, 1024))
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<InitOptions>();
        const keyProxy = ctx.globals.keyProxy ?? ctx.io.env.ARCA_KEY_PROXY_URL;
        if (keyProxy) return initManaged(ctx, opts, keyProxy);
        const stray = [ctx.globals.keyProxyTokenFile ? '--key-proxy-token-file' : '', ctx.globals.agentKey ? '--agent-key' : ''].filter(Boolean);
        if (stray.length > 0) throw new UsageError(`${stray.join(' and ')} only ${stray.length === 1 ? 'applies' : 'apply'} to managed stores`, 'add --key-proxy URL to create one, or drop them for a passphrase store');
        const backend = openStoreBackend(ctx);
        if (await backend.stat('config')) {
          throw new ArcaError(ArcaErrorCode.StoreExists, `a store already exists at ${backend.location}`, { hint: 'use it as it is, or choose another location' });
        }
        const passphrase = await getPassphrase(ctx, { confirm: true, prompt: 'passphrase for the new store' });
        const kdf = {
          ...(opts.kdfMemory !== undefined ? { memoryKiB: opts.kdfMemory } : {}),
          ...(opts.kdfIterations !== undefined ? { iterations: opts.kdfIterations } : {}),
          ...(opts.kdfParallelism !== undefined ? { parallelism: opts.kdfParallelism } : {}),
        };
        const store = await Store.init(backend, {
          passphrase,
          kdf,
          ...(opts.compressionLevel !== undefined ? { zstdLevel: opts.compressionLevel } : {}),
          ...(opts.packSize !== undefined ? { packSize: opts.packSize * 1024 * 1024 } : {}),
        });
        if (ctx.out.json) {
          ctx.out.jsonDocument({ storeId: store.config.id, location: backend.location, keySlot: store.keySlotId });
          return;
        }
        if (ctx.out.quiet) {
          ctx.out.result(store.config.id);
          return;
        }
        ctx.out.result(`created store ${store.config.id} at ${backend.location}`);
        ctx.out.result('');
        ctx.out.result('Keep your passphrase safe: it is the only way to read this store. If it is lost, the data is lost;');
        ctx.out.result('nobody can reset it. Consider adding a second passphrase kept elsewhere with `arca key add`.');
      }),
    );
  examples(cmd, [
    'arca --store /mnt/backup/arca init',
    'arca init --store s3://bucket/host1 --key-proxy https://kp.example.com --key-proxy-token-file /run/arca/token --agent-key /etc/arca/agent.pem',
    'ARCA_STORE=s3://my-bucket/arca arca init',
    'arca init --store ./store --passphrase-file ~/.arca-pass',
    'arca init --store /mnt/backup/fast --compression-level 1   # faster backups, slightly larger store',
  ]);
}

/**
 * `arca init --key-proxy URL`: a managed store. The store ID is the one the job token (operation
 * `init`) names; the key proxy creates the master key and returns only its envelope.
 */
async function initManaged(ctx: CliContext, opts: InitOptions, keyProxy: string): Promise<void> {
  if (ctx.globals.passphraseFile) {
    throw new UsageError('--passphrase-file does not apply with --key-proxy: a managed store has no passphrase', 'drop one of the two');
  }
  const kdf = [opts.kdfMemory !== undefined ? '--kdf-memory' : '', opts.kdfIterations !== undefined ? '--kdf-iterations' : '', opts.kdfParallelism !== undefined ? '--kdf-parallelism' : ''].filter(Boolean);
  if (kdf.length > 0) throw new UsageError(`${kdf.join(', ')} do${kdf.length === 1 ? 'es' : ''} not apply with --key-proxy: a managed store has no passphrase`, 'drop the --kdf-* options');
  const url = normalizeUrlOption(ctx, keyProxy);
  const backend = openStoreBackend(ctx);
  if (await backend.stat('config')) {
    throw new ArcaError(ArcaErrorCode.StoreExists, `a store already exists at ${backend.location}`, { hint: 'use it as it is, or choose another location' });
  }
  const connection = await keyProxyConnection(ctx, url);
  const store = await initManagedStore(backend, {
    ...connection,
    ...(opts.compressionLevel !== undefined ? { zstdLevel: opts.compressionLevel } : {}),
    ...(opts.packSize !== undefined ? { packSize: opts.packSize * 1024 * 1024 } : {}),
  });
  ctx.onCleanup(() => store.keys.close?.());
  if (ctx.out.json) {
    ctx.out.jsonDocument({ storeId: store.config.id, location: backend.location, keyCustody: 'key-proxy', keyProxy: url, agentKeyThumbprint: connection.identity.thumbprint });
    return;
  }
  if (ctx.out.quiet) {
    ctx.out.result(store.config.id);
    return;
  }
  ctx.out.result(`created store ${store.config.id} at ${backend.location}`);
  ctx.out.result('');
  ctx.out.result(`Its master key is held by the key proxy at ${url}; this agent (key ${connection.identity.thumbprint})`);
  ctx.out.result('gets the keys of each job with the job token the control plane issues for it.');
}
