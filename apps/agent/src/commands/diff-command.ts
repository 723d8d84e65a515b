import { diffSnapshots, diffStats, resolveSnapshot, type SnapshotChange } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { formatBytes, plural, shortId } from '../cli/format.ts';
import { openStore } from '../cli/store-options.ts';
import { displayPath, nodeJson } from '../cli/tree-format.ts';

const SYMBOLS: Record<SnapshotChange['change'], string> = { added: '+', removed: '-', modified: 'M', 'type-changed': 'T', metadata: 'U' };

function others(n: number): string {
  return n > 0 ? `, ${plural(n, 'other entry', 'other entries')}` : '';
}

export function registerDiffCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('diff')
    .description('show what changed between two snapshots')
    .argument('<snapshot1>', 'the older snapshot (ID, ID prefix or `latest`)')
    .argument('<snapshot2>', 'the newer snapshot')
    .action(
      app.action(async (ctx, command) => {
        const [refA, refB] = command.processedArgs as [string, string];
        // diffSnapshots takes a shared lock and loads the index itself
        const store = await openStore(ctx);
        const a = await resolveSnapshot(store, refA);
        const b = await resolveSnapshot(store, refB);
        if (!ctx.out.json) ctx.out.info(`comparing snapshot ${shortId(a.id)} to ${shortId(b.id)}:`);
        const print = (e: SnapshotChange) => {
          if (ctx.out.json) {
            ctx.out.jsonLine({
              change: e.change,
              path: e.path,
              before: e.before ? nodeJson(e.path, e.before) : null,
              after: e.after ? nodeJson(e.path, e.after) : null,
            });
          } else {
            const node = e.after ?? e.before;
            ctx.out.result(`${SYMBOLS[e.change]}    ${node ? displayPath(e.path, node) : e.path}`);
          }
        };
        // print each change as it comes, and count it
        const stats = await diffStats(
          (async function* () {
            for await (const e of diffSnapshots(store, a, b)) {
              print(e);
              yield e;
            }
          })(),
        );
        if (ctx.out.json) {
          ctx.out.jsonLine({ stats: { from: a.id, to: b.id, ...stats } });
          return;
        }
        ctx.out.result('');
        ctx.out.result(`added:        ${plural(stats.files.added, 'file')}, ${plural(stats.dirs.added, 'directory', 'directories')}${others(stats.added - stats.files.added - stats.dirs.added)}`);
        ctx.out.result(`removed:      ${plural(stats.files.removed, 'file')}, ${plural(stats.dirs.removed, 'directory', 'directories')}${others(stats.removed - stats.files.removed - stats.dirs.removed)}`);
        ctx.out.result(`modified:     ${plural(stats.files.modified, 'file')}${others(stats.modified - stats.files.modified)}`);
        if (stats.typeChanged > 0) ctx.out.result(`type changed: ${plural(stats.typeChanged, 'entry', 'entries')}`);
        ctx.out.result(`data:         ${formatBytes(stats.bytesAdded)} added, ${formatBytes(stats.bytesRemoved)} removed`);
        if (stats.metadata > 0) ctx.out.result(`metadata:     ${plural(stats.metadata, 'entry', 'entries')} (mode, owner or times only)`);
      }),
    );
  examples(cmd, ['arca diff 1a2b3c4d latest', 'arca diff 1a2b 5e6f --json | jq -c "select(.change == \\"added\\")"']);
  cmd.addHelpText(
    'after',
    '\nLegend: + added, - removed, M content modified, T type changed, U metadata changed (mode, owner, times).\nWith --json, prints one JSON object per change and a final {"stats": ...} line (JSON Lines).',
  );
}
