import { forget, forgetSnapshots, type ForgetResult, type PruneResult, type RetentionPolicy } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { UsageError } from '../cli/errors.ts';
import { plural, renderTable } from '../cli/format.ts';
import { collect, keepCount, parseDuration, parsePercent } from '../cli/option-parsers.ts';
import { openStore } from '../cli/store-options.ts';
import { printPruneResult, runPrune } from './prune-command.ts';
import { SNAPSHOT_HEADERS, snapshotJson, snapshotRows } from './snapshots-command.ts';

/** commander's camelCased options: the policy's fields, with `--keep-tag` collected as keepTag */
interface ForgetOptions extends Omit<RetentionPolicy, 'keepTags'> {
  keepTag?: string[];
  host?: string;
  tag?: string[];
  prune?: boolean;
  dryRun?: boolean;
  maxUnused?: number;
}

export function registerForgetCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('forget')
    .description('remove snapshots by ID or according to a retention policy (then `prune` frees the space)')
    .argument('[snapshots...]', 'snapshot IDs, unique ID prefixes or `latest` to remove (instead of a policy)')
    .option('--keep-last <n>', 'keep the n most recent snapshots (n may be "unlimited")', keepCount)
    .option('--keep-hourly <n>', 'keep the last snapshot of each of the last n hours that have one', keepCount)
    .option('--keep-daily <n>', 'keep the last snapshot of each of the last n days', keepCount)
    .option('--keep-weekly <n>', 'keep the last snapshot of each of the last n weeks', keepCount)
    .option('--keep-monthly <n>', 'keep the last snapshot of each of the last n months', keepCount)
    .option('--keep-yearly <n>', 'keep the last snapshot of each of the last n years', keepCount)
    .option('--keep-within <duration>', 'keep every snapshot younger than this, e.g. 30d, 2w, 6m, 1y6m, 12h', parseDuration)
    .option('--keep-tag <tag>', 'keep every snapshot with this tag (repeatable)', collect)
    .option('--host <name>', 'only consider snapshots of this host')
    .option('--tag <tag>', 'only consider snapshots with this tag (repeatable)', collect)
    .option('--prune', 'run `arca prune` afterwards to free the space')
    .option('-n, --dry-run', 'only show what would be removed')
    .option('--max-unused <percent>', 'with --prune: unused space to tolerate', parsePercent)
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<ForgetOptions>();
        const [refs] = command.processedArgs as [string[]];
        const policy: RetentionPolicy = {
          ...(opts.keepLast !== undefined ? { keepLast: opts.keepLast } : {}),
          ...(opts.keepHourly !== undefined ? { keepHourly: opts.keepHourly } : {}),
          ...(opts.keepDaily !== undefined ? { keepDaily: opts.keepDaily } : {}),
          ...(opts.keepWeekly !== undefined ? { keepWeekly: opts.keepWeekly } : {}),
          ...(opts.keepMonthly !== undefined ? { keepMonthly: opts.keepMonthly } : {}),
          ...(opts.keepYearly !== undefined ? { keepYearly: opts.keepYearly } : {}),
          ...(opts.keepWithin !== undefined ? { keepWithin: opts.keepWithin } : {}),
          ...(opts.keepTag ? { keepTags: opts.keepTag } : {}),
        };
        if (opts.maxUnused !== undefined && !opts.prune) {
          throw new UsageError('--max-unused only applies with --prune', 'add --prune, or run `arca prune --max-unused N` afterwards');
        }
        if (refs.length > 0 && (Object.keys(policy).length > 0 || opts.host || opts.tag)) {
          throw new UsageError('give either snapshot IDs or a retention policy, not both', 'run two `arca forget` commands');
        }
        if (refs.length === 0 && Object.keys(policy).length === 0) {
          throw new UsageError('no snapshots and no retention policy given: refusing to forget every snapshot', 'name snapshots (`arca forget ID...`) or add --keep-last N, --keep-daily N, --keep-within 30d, ... (see `arca forget --help`)');
        }
        const store = await openStore(ctx);
        const result = refs.length > 0
          ? await forgetSnapshots(store, refs, opts.dryRun ? { dryRun: true } : {})
          : await forget(store, policy, {
            ...(opts.dryRun ? { dryRun: true } : {}),
            ...(opts.host ? { hostname: opts.host } : {}),
            ...(opts.tag ? { tags: opts.tag } : {}),
          });
        let pruned: PruneResult | undefined;
        if (opts.prune) {
          if (!ctx.out.json) printForget(ctx.out, result, Boolean(opts.dryRun));
          pruned = await runPrune(ctx, store, { ...(opts.dryRun ? { dryRun: true } : {}), ...(opts.maxUnused !== undefined ? { maxUnused: opts.maxUnused } : {}) });
        } else if (!ctx.out.json) {
          printForget(ctx.out, result, Boolean(opts.dryRun));
        }
        if (ctx.out.json) {
          ctx.out.jsonDocument({
            dryRun: Boolean(opts.dryRun),
            keep: result.keep.map((k) => ({ ...snapshotJson(k.record), reasons: k.reasons })),
            remove: result.remove.map(snapshotJson),
            prune: pruned ?? null,
          });
          return;
        }
        if (pruned) {
          ctx.out.result('');
          printPruneResult(ctx, pruned);
        } else if (result.remove.length > 0 && !opts.dryRun) {
          ctx.out.info('run `arca prune` to free the space the removed snapshots used');
        }
      }),
    );
  examples(cmd, [
    'arca forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run',
    'arca forget --keep-last 10 --prune',
    'arca forget --keep-within 30d --keep-tag important --host laptop',
    'arca forget 3f2a9c1d latest --dry-run',
  ]);
  cmd.addHelpText('after', '\nWith a policy, a snapshot is kept when any rule keeps it; at least one --keep-* option or a snapshot ID is required.');
}

function printForget(out: { result(line?: string): void; info(line?: string): void }, result: ForgetResult, dryRun: boolean): void {
  if (result.keep.length > 0) {
    out.result(`keep ${plural(result.keep.length, 'snapshot')}:`);
    out.result(renderTable([...SNAPSHOT_HEADERS, 'Reasons'], snapshotRows(result.keep.map((k) => k.record), (rec) => result.keep.find((k) => k.record.id === rec.id)?.reasons.join(', ') ?? '')));
    out.result('');
  }
  if (result.remove.length === 0) {
    out.result('no snapshots to remove');
    return;
  }
  out.result(`${dryRun ? 'would remove' : 'removed'} ${plural(result.remove.length, 'snapshot')}:`);
  out.result(renderTable(SNAPSHOT_HEADERS, snapshotRows(result.remove)));
}
