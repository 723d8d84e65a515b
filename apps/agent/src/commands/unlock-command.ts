import { listLocks, removeLocks } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { plural } from '../cli/format.ts';
import { openStore } from '../cli/store-options.ts';

interface UnlockOptions {
  removeAll?: boolean;
}

export function registerUnlockCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('unlock')
    .description('remove stale locks (left by crashed or killed arca processes)')
    .option('--remove-all', 'remove every lock, also those of running operations (dangerous)')
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<UnlockOptions>();
        const store = await openStore(ctx);
        const removed = await removeLocks(store, Boolean(opts.removeAll));
        const remaining = await listLocks(store);
        if (ctx.out.json) {
          ctx.out.jsonDocument({
            removed: removed.length,
            remaining: remaining.map((l) => ({ name: l.name, stale: l.stale, ...(l.content ? { lock: l.content } : {}) })),
          });
          return;
        }
        ctx.out.result(removed.length === 0 ? 'no stale locks' : `removed ${plural(removed.length, opts.removeAll ? 'lock' : 'stale lock')}`);
        for (const l of remaining) {
          const c = l.content;
          ctx.out.result(
            c
              ? `still locked: ${c.exclusive ? 'exclusive' : 'shared'} lock for ${c.operation} by ${c.username}@${c.hostname} pid ${c.pid} since ${c.time}`
              : `still locked: ${l.name} (unreadable)`,
          );
        }
        if (remaining.length > 0) ctx.out.info('those operations look alive; if they are not, use `arca unlock --remove-all`');
      }),
    );
  examples(cmd, ['arca unlock', 'arca unlock --remove-all   # only when no other arca is using the store']);
}
