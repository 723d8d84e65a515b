import { ArcaError, ArcaErrorCode, Store } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
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
    .description('create a new, empty store')
    .option('--kdf-memory <KiB>', 'Argon2id memory cost of the passphrase key slot, in KiB (default 65536; 8192 to 4194304)', integer(...KDF_LIMITS.memoryKiB))
    .option('--kdf-iterations <n>', 'Argon2id iterations (default 3; 1 to 64)', integer(...KDF_LIMITS.iterations))
    .option('--kdf-parallelism <n>', 'Argon2id lanes (default 4; 1 to 16)', integer(...KDF_LIMITS.parallelism))
    .option('--compression-level <n>', 'zstd level for the store, 0 (off) to 19 (default 3; 1 is faster, stores a few % more)', integer(0, 19))
    .option('--pack-size <MiB>', 'target pack size in MiB (default 16; larger means fewer objects on S3; 1 to 1024)', integer(1, 1024))
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<InitOptions>();
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
    'ARCA_STORE=s3://my-bucket/arca arca init',
    'arca init --store ./store --passphrase-file ~/.arca-pass',
    'arca init --store /mnt/backup/fast --compression-level 1   # faster backups, slightly larger store',
  ]);
}
