import { ArcaErrorCode, backup, isArcaError, type BackupProgress } from '@arca/engine';
import { InterruptedError } from '../cli/errors.ts';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { ExitCode } from '../cli/exit-codes.ts';
import { formatBytes, formatDuration, plural, shortId } from '../cli/format.ts';
import { collect } from '../cli/option-parsers.ts';
import { startSourceScan } from '../cli/source-scan.ts';
import { openStore } from '../cli/store-options.ts';

interface BackupOptions {
  tag?: string[];
  host?: string;
  exclude?: string[];
  excludeFile?: string[];
  oneFileSystem?: boolean;
  parent?: string;
  force?: boolean;
}

export const BACKUP_INTERRUPTED = 'interrupted; the store is consistent, run backup again to resume';

export function registerBackupCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('backup')
    .description('save a snapshot of files and directories')
    .argument('<path...>', 'files and directories to back up')
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect)
    .option('--host <name>', 'record this host name instead of the machine\'s')
    .option('--exclude <pattern>', 'leave out paths matching a gitignore-style pattern (repeatable)', collect)
    .option('--exclude-file <file>', 'read exclude patterns from a file, one per line (repeatable)', collect)
    .option('--one-file-system', 'do not descend into other file systems (mount points)')
    .option('--parent <snapshot>', 'compare against this snapshot to skip unchanged files (default: the latest of the same host and paths)')
    .option('--force', 'read every file, even when it looks unchanged since the parent snapshot')
    .action(
      app.action(async (ctx, command) => {
        const [paths] = command.processedArgs as [string[]];
        const opts = command.opts<BackupOptions>();
        const store = await openStore(ctx);

        const bar = ctx.startProgress('backup', 'bytes');
        let progress: BackupProgress | undefined;
        let scanner: ReturnType<typeof startSourceScan> | undefined;
        const draw = () => {
          if (!bar) return;
          const totals = scanner?.scan.totals;
          const files = progress?.files ?? 0;
          const detail = totals?.complete ? `${files}/${totals.files} files` : `${files} files (counting ${totals?.files ?? 0}…)`;
          bar.update({ done: progress?.bytesDone ?? 0, total: totals?.complete ? totals.bytes : undefined, detail });
        };
        // count files and bytes alongside the backup, for the percentage and ETA
        if (bar) scanner = startSourceScan(paths, { ...(opts.oneFileSystem ? { oneFileSystem: true } : {}), onUpdate: draw });

        // First Ctrl-C: stop reading, finish what is in flight and save its index, so the next run
        // resumes from it; a second Ctrl-C quits at once (ctx.interruptible below).
        const controller = new AbortController();
        const firstSigint = () => {
          ctx.out.warn('interrupting: saving what was read so far (Ctrl-C again to quit at once)');
          controller.abort();
        };
        ctx.io.signals?.once('SIGINT', firstSigint);
        const work = backup(store, {
          paths,
          signal: controller.signal,
          ...(opts.exclude ? { excludes: opts.exclude } : {}),
          ...(opts.excludeFile ? { excludeFiles: opts.excludeFile } : {}),
          ...(opts.oneFileSystem ? { oneFileSystem: true } : {}),
          ...(opts.tag ? { tags: opts.tag } : {}),
          ...(opts.host ? { hostname: opts.host } : {}),
          ...(opts.parent ? { parent: opts.parent } : {}),
          ...(opts.force ? { force: true } : {}),
          onProgress: (p) => {
            progress = p;
            draw();
          },
          onWarning: (w) => ctx.out.warn(`skipped ${w.path}: ${w.message}`),
        });
        let result;
        try {
          result = await ctx.interruptible(
            work.catch((err: unknown) => {
              throw isArcaError(err, ArcaErrorCode.Interrupted) ? new InterruptedError(BACKUP_INTERRUPTED) : err;
            }),
            BACKUP_INTERRUPTED,
            2,
          );
        } finally {
          ctx.io.signals?.off('SIGINT', firstSigint);
          scanner?.scan.cancel();
          ctx.stopProgress(bar);
        }

        const { id, snapshot, warnings } = result;
        const s = snapshot.summary;
        const code = warnings.length > 0 ? ExitCode.Partial : ExitCode.Ok;
        if (ctx.out.json) {
          ctx.out.jsonDocument({
            id,
            shortId: shortId(id),
            time: snapshot.time,
            paths: snapshot.paths,
            hostname: snapshot.hostname,
            tags: snapshot.tags,
            parent: snapshot.parent ?? null,
            summary: s ?? null,
            warnings,
          });
          return code;
        }
        if (ctx.out.quiet) {
          ctx.out.result(id);
          return code;
        }
        ctx.out.result(`snapshot ${id} saved`);
        if (s) {
          const total = s.filesNew + s.filesChanged + s.filesUnmodified;
          ctx.out.result(`  files:     ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnmodified} unmodified (${plural(s.dirs, 'directory', 'directories')})`);
          ctx.out.result(`  added:     ${formatBytes(s.bytesNew)} (${formatBytes(s.bytesStored)} stored after compression and encryption)`);
          ctx.out.result(`  processed: ${plural(total, 'file')}, ${formatBytes(s.bytesTotal)} in ${formatDuration(s.durationMs)}`);
        }
        if (snapshot.parent) ctx.out.result(`  parent:    ${shortId(snapshot.parent)}`);
        if (warnings.length > 0) ctx.out.result(`  skipped:   ${plural(warnings.length, 'path')} could not be read (see the warnings above)`);
        return code;
      }),
    );
  examples(cmd, [
    'arca backup ~/Documents ~/Pictures',
    'arca backup /etc --tag system --tag daily',
    "arca backup ~ --exclude '*.tmp' --exclude 'node_modules/' --exclude-file ~/.arca-excludes",
    'arca backup / --one-file-system --exclude /proc --exclude /sys',
    'arca backup ~/src --json | jq -r .id',
  ]);
  cmd.addHelpText(
    'after',
    `
Exclude patterns use gitignore syntax, matched against absolute paths: '*.log' at any depth,
'/var/cache' only that path, 'build/' only directories, '!keep.log' re-includes.
Files that cannot be read are skipped with a warning, and the exit status is 3.`,
  );
}
