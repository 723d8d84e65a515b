import { repairIndex } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { plural, shortId } from '../cli/format.ts';
import { openStore } from '../cli/store-options.ts';

interface RepairIndexCliOptions {
  dryRun?: boolean;
}

export function registerRepairCommand(program: Command, app: CliApp): void {
  const repair = program.command('repair').description('repair a damaged store');
  const index = repair
    .command('index')
    .description('rebuild the index from the packs, leaving out blobs that fail verification, so the next backup stores them again')
    .option('-n, --dry-run', 'verify and report what would be left out, change nothing')
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<RepairIndexCliOptions>();
        const store = await openStore(ctx);
        const result = await ctx.withPhaseProgress('repair', (onProgress) => repairIndex(store, { ...(opts.dryRun ? { dryRun: true } : {}), onProgress }));
        if (ctx.out.json) {
          ctx.out.jsonDocument(result);
          return;
        }
        const verb = result.dryRun ? 'would leave out' : 'left out';
        for (const b of result.removed) {
          ctx.out.result(`${verb} ${b.type} blob ${shortId(b.id)} in pack ${shortId(b.pack ?? '')}: ${b.reason}`);
          for (const f of b.files) ctx.out.result(`  used by ${shortId(f.snapshot)}:${f.path}`);
        }
        for (const p of result.unreadablePacks) ctx.out.warn(`pack ${shortId(p)} has an unreadable header: none of its blobs are indexed`);
        ctx.out.result(
          `${result.dryRun ? 'would index' : 'indexed'} ${plural(result.blobsIndexed, 'blob')} in ${plural(result.packsIndexed, 'pack')}` +
            (result.dryRun ? '' : `, replacing ${plural(result.indexFilesReplaced, 'index file')}`),
        );
        if (result.removed.length > 0 && !result.dryRun) {
          ctx.out.result('');
          ctx.out.result('Back up the affected paths again: files that still have this content store it anew, and the');
          ctx.out.result('snapshots listed above become complete again. Then `arca prune` reclaims the damaged bytes.');
        }
      }),
    );
  examples(index, ['arca check --read-data          # finds damaged blobs', 'arca repair index --dry-run', 'arca repair index && arca backup /home/me']);
  examples(repair, ['arca repair index']);
}
