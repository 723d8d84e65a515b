import { loadTree, walkTree, type TreeNode } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { resolveSnapshotPath } from '../cli/snapshot-ref.ts';
import { openStoreForReading } from '../cli/store-options.ts';
import { displayPath, longLine, nodeJson } from '../cli/tree-format.ts';

interface LsOptions {
  long?: boolean;
  recursive?: boolean;
}

export function registerLsCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('ls')
    .description('list the files in a snapshot')
    .argument('<snapshot[:/path]>', 'snapshot ID, ID prefix or `latest`, optionally with a path inside it')
    .option('-l, --long', 'show mode, owner, size and modification time')
    .option('-R, --recursive', 'list subdirectories too')
    .action(
      app.action(async (ctx, command) => {
        const [arg] = command.processedArgs as [string];
        const opts = command.opts<LsOptions>();
        const store = await openStoreForReading(ctx, 'ls');
        const { path: sub, node } = await resolveSnapshotPath(store, arg);
        const emit = (p: string, n: TreeNode) => {
          if (ctx.out.json) ctx.out.jsonLine(nodeJson(p, n));
          else ctx.out.result(opts.long ? longLine(p, n) : displayPath(p, n));
        };
        if (node.type !== 'dir' || !node.subtree) {
          emit(sub ?? '/', node);
          return;
        }
        const prefix = sub ?? '';
        if (opts.recursive) {
          for await (const entry of walkTree(store, node.subtree, prefix)) emit(entry.path, entry.node);
        } else {
          for (const child of (await loadTree(store, node.subtree)).nodes) emit(`${prefix}/${child.name}`, child);
        }
      }),
    );
  examples(cmd, ['arca ls latest', 'arca ls latest:/etc --long', 'arca ls 1a2b3c4d:/home/me/docs -R', 'arca ls latest:/etc --json | jq -r .path']);
  cmd.addHelpText('after', '\nWith --json, prints one JSON object per entry (JSON Lines).');
}
