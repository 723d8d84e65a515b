import { check, type CheckResult } from '@arca/engine';
import { Option, type Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { CliError } from '../cli/errors.ts';
import { formatBytes, formatDuration, plural, shortId } from '../cli/format.ts';
import { parseSubset } from '../cli/option-parsers.ts';
import { openStore } from '../cli/store-options.ts';

interface CheckOptions {
  readData?: boolean;
  readDataSubset?: { n: number; of: number };
}

const MAX_FILES_SHOWN = 20;

export function registerCheckCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('check')
    .description('verify the store: index, packs, snapshots and trees (and file data with --read-data)')
    .addOption(new Option('--read-data', 'also download and verify every data blob (reads the whole store)').conflicts('readDataSubset'))
    .addOption(new Option('--read-data-subset <n/m>', 'verify the data of part n of m of the packs, e.g. 1/7').argParser(parseSubset))
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<CheckOptions>();
        const store = await openStore(ctx);
        const started = performance.now();
        const result: CheckResult = await ctx.withPhaseProgress('check', (onProgress) =>
          check(store, {
            ...(opts.readData ? { readData: true } : {}),
            ...(opts.readDataSubset ? { readDataSubset: opts.readDataSubset } : {}),
            onProgress,
          }),
        );
        if (ctx.out.json) {
          ctx.out.jsonDocument(result);
        } else {
          const st = result.stats;
          ctx.out.info(
            `checked ${plural(st.snapshots, 'snapshot')}, ${plural(st.trees, 'tree')}, ${plural(st.packs, 'pack')}, ${plural(st.blobs, 'blob')}` +
              `${st.bytesRead > 0 ? ` (read ${formatBytes(st.bytesRead)})` : ''} in ${formatDuration(performance.now() - started)}`,
          );
          for (const e of result.errors) ctx.out.result(`error: ${e.kind}: ${e.message}`);
          for (const d of result.damagedBlobs) {
            ctx.out.result(`damaged ${d.type} blob ${d.id.slice(0, 12)}${d.pack ? ` in pack ${shortId(d.pack)}` : ''}: ${d.reason}`);
            for (const f of d.files.slice(0, MAX_FILES_SHOWN)) ctx.out.result(`  used by ${shortId(f.snapshot)}:${f.path}`);
            if (d.files.length > MAX_FILES_SHOWN) ctx.out.result(`  ... and ${d.files.length - MAX_FILES_SHOWN} more (see --json)`);
          }
          if (result.packsWithUnindexedData.length > 0) {
            ctx.out.info(`${plural(result.packsWithUnindexedData.length, 'pack')} hold data no index describes (e.g. blobs left out by \`arca repair index\`); \`arca prune\` reclaims the space`);
          }
          if (result.unreferencedPacks.length > 0) {
            ctx.out.info(`${plural(result.unreferencedPacks.length, 'pack')} not referenced by the index (e.g. left by an interrupted backup); \`arca prune\` removes them`);
          }
          if (result.strayObjects.length > 0) {
            ctx.out.info(`${plural(result.strayObjects.length, 'object')} under packs/ not named like packs (ignored): ${result.strayObjects.slice(0, 3).join(', ')}${result.strayObjects.length > 3 ? ', ...' : ''}`);
          }
          if (result.ok) ctx.out.info(opts.readData || opts.readDataSubset ? 'no errors found' : 'no errors found (file data was not read; use --read-data to verify it)');
        }
        if (!result.ok) {
          throw new CliError('CHECK_FAILED', `check found ${plural(Math.max(result.errors.length, result.damagedBlobs.length, 1), 'error')}`, {
            hint: result.damagedBlobs.length > 0
              ? 'run `arca repair index` to take the damaged blobs out of the index, then back up the affected paths again: files that still have this content store it anew and the listed snapshots become complete; otherwise restore those files from another copy'
              : 'see the errors above; restore the affected objects from a copy of the store if you have one',
          });
        }
      }),
    );
  examples(cmd, ['arca check', 'arca check --read-data', 'arca check --read-data-subset 3/7   # a seventh of the data, e.g. one part per weekday']);
  cmd.addHelpText('after', '\nThe exit status is 1 when the store has errors.');
}
