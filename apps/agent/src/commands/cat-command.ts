import { BlobType } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { CliError, UsageError } from '../cli/errors.ts';
import { parseSnapshotPath, resolveSnapshotPath } from '../cli/snapshot-ref.ts';
import { openStoreForReading } from '../cli/store-options.ts';

export function registerCatCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('cat')
    .description('write the content of a file in a snapshot to stdout')
    .argument('<snapshot:/path>', 'snapshot ID, ID prefix or `latest`, a colon, and the path of a file in it')
    .action(
      app.action(async (ctx, command) => {
        const [arg] = command.processedArgs as [string];
        if (parseSnapshotPath(arg).path === undefined) {
          throw new UsageError(`give the file to print as SNAPSHOT:/path, e.g. ${arg}:/etc/hosts`, `list the files with \`arca ls ${arg}\``);
        }
        const store = await openStoreForReading(ctx, 'cat');
        const { snap, path: p, node } = await resolveSnapshotPath(store, arg);
        if (node.type !== 'file') {
          throw new CliError('NOT_A_FILE', `${p} in snapshot ${snap.id.slice(0, 8)} is a ${node.type === 'dir' ? 'directory' : node.type}, not a file`, {
            hint: node.type === 'dir' ? `list it with \`arca ls ${snap.id.slice(0, 8)}:${p}\`` : node.type === 'symlink' ? `it points to ${node.target ?? '?'}` : undefined,
          });
        }
        const ids = node.content ?? [];
        // one blob read ahead, so decryption overlaps the write
        let next = ids.length > 0 ? store.readBlob(ids[0]!, BlobType.Data) : undefined;
        for (let i = 0; i < ids.length; i++) {
          const data = await next!;
          next = i + 1 < ids.length ? store.readBlob(ids[i + 1]!, BlobType.Data) : undefined;
          next?.catch(() => undefined);
          await ctx.out.writeBytes(data);
        }
      }),
    );
  examples(cmd, ['arca cat latest:/etc/hosts', 'arca cat 1a2b3c:/home/me/notes.txt > notes.txt', 'arca cat latest:/var/db/dump.sql.gz | gunzip | less']);
  cmd.addHelpText('after', '\nThe content is written as-is, also with --json (which only changes how errors are reported).');
}
