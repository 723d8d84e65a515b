import path from 'node:path';
import {
  ArcaErrorCode, backup, backupStream, isArcaError, spawnCommandSource, streamSourcePath, type BackupCommonOptions, type BackupProgress, type BackupResult, type CommandSource, type Store,
} from '@arca/engine';
import { InterruptedError, UsageError } from '../cli/errors.ts';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import type { CliContext } from '../cli/context.ts';
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
  stdin?: boolean;
  stdinFilename?: string;
  stdinFromCommand?: boolean;
}

/** The name a stream is recorded under when --stdin-filename is not given. */
export const DEFAULT_STDIN_FILENAME = 'stdin';

/** What to back up: paths, stdin, or a command's stdout. */
type BackupSource =
  | { kind: 'paths'; paths: string[] }
  | { kind: 'stdin'; name: string }
  | { kind: 'command'; name: string; command: string; args: string[] };

function backupSource(args: string[], opts: BackupOptions): BackupSource {
  if (opts.stdin && opts.stdinFromCommand) throw new UsageError('--stdin and --stdin-from-command cannot be combined');
  const stream = opts.stdin || opts.stdinFromCommand;
  if (!stream) {
    if (opts.stdinFilename !== undefined) throw new UsageError('--stdin-filename needs --stdin or --stdin-from-command');
    if (args.length === 0) throw new UsageError('nothing to back up: give at least one path', 'or back up a stream with --stdin or --stdin-from-command -- CMD [ARGS...]');
    return { kind: 'paths', paths: args };
  }
  const flag = opts.stdin ? '--stdin' : '--stdin-from-command';
  for (const [given, name] of [[opts.exclude, '--exclude'], [opts.excludeFile, '--exclude-file'], [opts.oneFileSystem, '--one-file-system'], [opts.force, '--force']] as const) {
    if (given) throw new UsageError(`${name} applies to backups of paths, not with ${flag}`);
  }
  const name = opts.stdinFilename ?? DEFAULT_STDIN_FILENAME;
  try {
    streamSourcePath(name);
  } catch (err) {
    throw new UsageError(`--stdin-filename: ${(err as Error).message}`, 'give a file name such as db.dump or postgres/orders.dump');
  }
  if (opts.stdin) {
    if (args.length > 0) throw new UsageError('--stdin takes no paths', `to back up the output of a command, use --stdin-from-command -- ${args.join(' ')}`);
    return { kind: 'stdin', name };
  }
  if (args.length === 0) throw new UsageError('--stdin-from-command needs the command to run', 'put it after `--`: arca backup --stdin-from-command -- pg_dump --format=custom mydb');
  return { kind: 'command', name, command: args[0]!, args: args.slice(1) };
}

export const BACKUP_INTERRUPTED = 'interrupted; the store is consistent, run backup again to resume';

export function registerBackupCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('backup')
    .description('save a snapshot of files and directories, or of a byte stream (stdin, a command\'s output)')
    .argument('[path...]', 'files and directories to back up (with --stdin-from-command: the command and its arguments, after `--`)')
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect)
    .option('--host <name>', 'record this host name instead of the machine\'s')
    .option('--exclude <pattern>', 'leave out paths matching a gitignore-style pattern (repeatable)', collect)
    .option('--exclude-file <file>', 'read exclude patterns from a file, one per line (repeatable)', collect)
    .option('--one-file-system', 'do not descend into other file systems (mount points)')
    .option('--parent <snapshot>', 'compare against this snapshot to skip unchanged files (default: the latest of the same host and paths)')
    .option('--force', 'read every file, even when it looks unchanged since the parent snapshot')
    .option('--stdin', 'back up what is read from stdin, as one file (named by --stdin-filename)')
    .option('--stdin-from-command', 'run the command given after `--` (no shell) and back up its stdout as one file; fails, saving no snapshot, if the command exits non-zero')
    .option('--stdin-filename <name>', `the name the stream is recorded under in the snapshot (default: ${DEFAULT_STDIN_FILENAME})`)
    .action(
      app.action(async (ctx, command) => {
        const [args] = command.processedArgs as [string[]];
        const opts = command.opts<BackupOptions>();
        const source = backupSource(args, opts);
        if (source.kind === 'stdin' && ctx.io.isTTY.stdin) throw new UsageError('--stdin reads the data to back up from stdin, which is a terminal', 'pipe the data in: some-command | arca backup --stdin --stdin-filename NAME');
        const store = await openStore(ctx);
        if (source.kind !== 'paths') return backupStreamAction(ctx, store, source, opts);
        const paths = source.paths;

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

        let result;
        try {
          result = await runInterruptibly(ctx, (signal) => backup(store, {
            paths,
            signal,
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
          }));
        } finally {
          scanner?.scan.cancel();
          ctx.stopProgress(bar);
        }

        return printResult(ctx, result);
      }),
    );
  examples(cmd, [
    'arca backup ~/Documents ~/Pictures',
    'arca backup /etc --tag system --tag daily',
    "arca backup ~ --exclude '*.tmp' --exclude 'node_modules/' --exclude-file ~/.arca-excludes",
    'arca backup / --one-file-system --exclude /proc --exclude /sys',
    'arca backup ~/src --json | jq -r .id',
    'pg_dump --format=custom mydb | arca backup --stdin --stdin-filename mydb.dump',
    'arca backup --stdin-from-command --stdin-filename postgres/mydb.dump -- pg_dump --format=custom --dbname mydb',
  ]);
  cmd.addHelpText(
    'after',
    `
Exclude patterns use gitignore syntax, matched against absolute paths: '*.log' at any depth,
'/var/cache' only that path, 'build/' only directories, '!keep.log' re-includes.
Files that cannot be read are skipped with a warning, and the exit status is 3.
With --stdin-from-command, a command that exits non-zero or is killed fails the backup (exit 1)
and no snapshot is saved.`,
  );
}

/** The summary of a saved snapshot (text, -q or --json); the exit status: 3 when paths were skipped. */
function printResult(ctx: CliContext, result: BackupResult): number {
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
}

/**
 * `--stdin` / `--stdin-from-command`: one stream into one file of the snapshot. A command runs
 * without a shell; whatever happens to the backup, it does not outlive it.
 */
/**
 * Runs a backup under the CLI's Ctrl-C rules: the first Ctrl-C stops reading, finishes what is in
 * flight and saves its index, so the next run resumes from it; a second one quits at once.
 */
async function runInterruptibly(ctx: CliContext, start: (signal: AbortSignal) => Promise<BackupResult>): Promise<BackupResult> {
  const controller = new AbortController();
  const firstSigint = () => {
    ctx.out.warn('interrupting: saving what was read so far (Ctrl-C again to quit at once)');
    controller.abort();
  };
  ctx.io.signals?.once('SIGINT', firstSigint);
  try {
    return await ctx.interruptible(
      start(controller.signal).catch((err: unknown) => {
        throw isArcaError(err, ArcaErrorCode.Interrupted) ? new InterruptedError(BACKUP_INTERRUPTED) : err;
      }),
      BACKUP_INTERRUPTED,
      2,
    );
  } finally {
    ctx.io.signals?.off('SIGINT', firstSigint);
  }
}

async function backupStreamAction(
  ctx: CliContext,
  store: Store,
  source: Exclude<BackupSource, { kind: 'paths' }>,
  opts: BackupOptions,
): Promise<number> {
  const bar = ctx.startProgress('backup', 'bytes');
  let child: CommandSource | undefined;
  if (source.kind === 'command') {
    child = spawnCommandSource(source.command, source.args);
    ctx.onCleanup(() => child!.kill());
  }
  let result;
  try {
    result = await runInterruptibly(ctx, (signal) => {
      const common: BackupCommonOptions = {
        signal,
        ...(opts.tag ? { tags: opts.tag } : {}),
        ...(opts.host ? { hostname: opts.host } : {}),
        ...(opts.parent ? { parent: opts.parent } : {}),
        onProgress: (p: BackupProgress) => bar?.update({ done: p.bytesDone, total: undefined, detail: 'reading the stream' }),
      };
      return backupStream(store, {
        ...common,
        path: source.name,
        stream: child ? child.stream : (ctx.io.stdin as AsyncIterable<Uint8Array>),
        ...(child ? { finished: () => child.finished() } : {}),
      });
    });
  } finally {
    ctx.stopProgress(bar);
    child?.kill();
  }
  // a command that succeeded may still have had something to say (warnings of pg_dump)
  const said = child?.stderrTail().trim();
  if (said && source.kind === 'command') for (const line of said.split('\n')) ctx.out.warn(`${path.basename(source.command)} (stderr): ${line}`);
  return printResult(ctx, result);
}
