import { prune, type PruneResult, type Store } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import type { CliContext } from '../cli/context.ts';
import { formatBytes, plural } from '../cli/format.ts';
import { parsePercent } from '../cli/option-parsers.ts';
import { openStore } from '../cli/store-options.ts';

export interface PruneOptions {
  dryRun?: boolean;
  maxUnused?: number;
}

/** Run prune with a progress line (shared with `forget --prune`). */
export function runPrune(ctx: CliContext, store: Store, opts: PruneOptions): Promise<PruneResult> {
  return ctx.withPhaseProgress('prune', (onProgress) =>
    prune(store, {
      ...(opts.dryRun ? { dryRun: true } : {}),
      ...(opts.maxUnused !== undefined ? { maxUnusedPercent: opts.maxUnused } : {}),
      onProgress,
    }),
  );
}

export function printPruneResult(ctx: CliContext, r: PruneResult): void {
  const [del, repack, keep] = r.dryRun ? ['would delete', 'repack', 'keep'] : ['deleted', 'repacked', 'kept'];
  ctx.out.result(`${del} ${plural(r.packsDeleted, 'pack')}, ${repack} ${plural(r.packsRepacked, 'pack')} (${formatBytes(r.bytesRepacked)} rewritten), ${keep} ${plural(r.packsKept, 'pack')}`);
  ctx.out.result(`${r.dryRun ? 'would remove' : 'removed'} ${plural(r.blobsRemoved, 'unused blob')}, ${r.dryRun ? 'freeing' : 'freed'} ${formatBytes(r.bytesFreed)}`);
  if (r.unreferencedPacks > 0) ctx.out.result(`(${plural(r.unreferencedPacks, 'pack')} of the deleted ones were left by interrupted backups)`);
  ctx.out.result(`unused space left: ${formatBytes(r.unusedBytesAfter)}`);
  if (r.missingPacks.length > 0) {
    ctx.out.warn(`${plural(r.missingPacks.length, 'pack')} named in the index ${r.missingPacks.length === 1 ? 'is' : 'are'} missing from the store; run \`arca check\` to see which files are affected`);
  }
}

export function registerPruneCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('prune')
    .description('delete data no snapshot uses any more, repacking partly used packs')
    .option('-n, --dry-run', 'only show what would be deleted')
    .option('--max-unused <percent>', 'tolerate this much unused space instead of repacking (default: the engine\'s)', parsePercent)
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<PruneOptions>();
        const store = await openStore(ctx);
        const result = await runPrune(ctx, store, opts);
        if (ctx.out.json) ctx.out.jsonDocument(result);
        else printPruneResult(ctx, result);
      }),
    );
  examples(cmd, ['arca prune --dry-run', 'arca prune', 'arca prune --max-unused 10%']);
  cmd.addHelpText('after', '\nPrune locks the store exclusively: other commands started meanwhile stop with "the store is locked". Run `arca forget` first to choose what to remove.');
}
