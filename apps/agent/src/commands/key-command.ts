import { addKeySlot, listKeySlots, removeKeySlot } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { formatTime, plural, renderTable, shortId } from '../cli/format.ts';
import { integer, KDF_LIMITS } from '../cli/option-parsers.ts';
import { getNewPassphrase } from '../cli/passphrase.ts';
import { openStoreWithPassphrase } from '../cli/store-options.ts';

interface KeyAddOptions {
  newPassphraseFile?: string;
  label?: string;
  kdfMemory?: number;
  kdfIterations?: number;
  kdfParallelism?: number;
}

export function registerKeyCommand(program: Command, app: CliApp): void {
  const key = program.command('key').description('manage the passphrases (key slots) that open the store (not for stores managed by a key proxy)');
  examples(key, ['arca key list', 'arca key add --label "offsite copy"', 'arca key remove 1a2b3c4d']);

  const add = key
    .command('add')
    .description('add a passphrase that opens the store (asks for the current one first)')
    .option('--new-passphrase-file <file>', 'read the new passphrase from the first line of a file (env: ARCA_NEW_PASSPHRASE holds it directly)')
    .option('--label <text>', 'a note to tell the slots apart, e.g. "laptop" or "safe deposit box"')
    .option('--kdf-memory <KiB>', 'Argon2id memory cost in KiB (default 65536; 8192 to 4194304)', integer(...KDF_LIMITS.memoryKiB))
    .option('--kdf-iterations <n>', 'Argon2id iterations (default 3; 1 to 64)', integer(...KDF_LIMITS.iterations))
    .option('--kdf-parallelism <n>', 'Argon2id lanes (default 4; 1 to 16)', integer(...KDF_LIMITS.parallelism))
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<KeyAddOptions>();
        const { store, passphrase } = await openStoreWithPassphrase(ctx);
        const fresh = await getNewPassphrase(ctx, opts.newPassphraseFile);
        const masterKey = await store.masterKeyFor(passphrase);
        let id: string;
        try {
          id = await addKeySlot(store.backend, store.config.id, masterKey, fresh, {
            ...(opts.label !== undefined ? { label: opts.label } : {}),
            kdf: {
              ...(opts.kdfMemory !== undefined ? { memoryKiB: opts.kdfMemory } : {}),
              ...(opts.kdfIterations !== undefined ? { iterations: opts.kdfIterations } : {}),
              ...(opts.kdfParallelism !== undefined ? { parallelism: opts.kdfParallelism } : {}),
            },
          });
        } finally {
          masterKey.fill(0);
        }
        if (ctx.out.json) ctx.out.jsonDocument({ id });
        else ctx.out.result(`added key slot ${shortId(id)}${ctx.out.quiet ? '' : ` (${id})`}`);
      }),
    );
  examples(add, [
    'arca key add',
    'ARCA_NEW_PASSPHRASE="correct horse battery staple" arca key add --label backup-server',
    'arca key add --new-passphrase-file /root/.arca-offsite --label offsite',
  ]);

  const list = key
    .command('list')
    .description('list the key slots; * marks the one that opened the store')
    .action(
      app.action(async (ctx) => {
        const { store } = await openStoreWithPassphrase(ctx);
        const slots = await listKeySlots(store.backend);
        if (ctx.out.json) {
          ctx.out.jsonDocument(slots.map((s) => ({ ...s, current: s.id === store.keySlotId })));
          return;
        }
        ctx.out.result(
          renderTable(
            [' ', 'ID', 'Created', 'User', 'Host', 'Label'],
            slots.map((s) => [s.id === store.keySlotId ? '*' : '', shortId(s.id), formatTime(s.created), s.user, s.host, s.label]),
          ),
        );
        ctx.out.info(plural(slots.length, 'key slot'));
      }),
    );
  examples(list, ['arca key list', 'arca key list --json']);

  const remove = key
    .command('remove')
    .alias('rm')
    .description('remove a key slot (not the last one, nor the one used to open the store)')
    .argument('<id>', 'key slot ID or unique prefix (see `arca key list`)')
    .action(
      app.action(async (ctx, command) => {
        const [id] = command.processedArgs as [string];
        const { store } = await openStoreWithPassphrase(ctx);
        const slots = await listKeySlots(store.backend);
        const match = slots.filter((s) => s.id.startsWith(id.toLowerCase()));
        await removeKeySlot(store.backend, id.toLowerCase(), store.keySlotId ?? '');
        const removed = match.length === 1 ? match[0]!.id : id;
        if (ctx.out.json) ctx.out.jsonDocument({ removed });
        else ctx.out.result(`removed key slot ${shortId(removed)}`);
      }),
    );
  examples(remove, ['arca key remove 1a2b3c4d', 'ARCA_PASSPHRASE_FILE=~/.other-pass arca key remove 5e6f7a8b   # open with another slot']);
}
