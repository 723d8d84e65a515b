import path from 'node:path';
import { findNode, resolveSnapshot, restore, walkTree, type RestoreProgress, type Store } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { ExitCode } from '../cli/exit-codes.ts';
import { formatBytes, formatDuration, plural, shortId } from '../cli/format.ts';
import { parseSnapshotPath } from '../cli/snapshot-ref.ts';
import { openStore } from '../cli/store-options.ts';

interface RestoreOptions {
  target: string;
}

export const RESTORE_INTERRUPTED = 'interrupted; files restored so far are complete, run restore again to finish';

/** Bytes of file content under a path of a snapshot (for the progress total). */
async function bytesUnder(store: Store, rootTree: string, sub: string): Promise<number> {
  const node = await findNode(store, rootTree, sub);
  if (!node) return 0;
  if (node.type !== 'dir') return node.size ?? 0;
  let total = 0;
  for await (const e of walkTree(store, node.subtree!)) if (e.node.type === 'file') total += e.node.size ?? 0;
  return total;
}

export function registerRestoreCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('restore')
    .description('restore a snapshot, or a path inside it, into a directory')
    .argument('<snapshot[:/path]>', 'snapshot ID, ID prefix or `latest`, optionally with a path inside it')
    .requiredOption('-t, --target <dir>', 'directory to restore into (created if missing)')
    .action(
      app.action(async (ctx, command) => {
        const [arg] = command.processedArgs as [string];
        const opts = command.opts<RestoreOptions>();
        const { ref, path: sub } = parseSnapshotPath(arg);
        const store = await openStore(ctx);
        const snap = await resolveSnapshot(store, ref);
        const target = path.resolve(opts.target);
        const started = performance.now();

        const bar = ctx.startProgress('restore', 'bytes');
        let total: number | undefined = sub === undefined ? snap.snapshot.summary?.bytesTotal : undefined;
        let walking = false;
        const onProgress = (p: RestoreProgress) => {
          if (!bar) return;
          if (total === undefined && !walking) {
            // the index is loaded once restore reports: sum the sizes under the path meanwhile
            walking = true;
            void bytesUnder(store, snap.snapshot.tree, sub ?? '/').then((t) => (total = t), () => undefined);
          }
          bar.update({ done: p.bytes, total, detail: plural(p.files, 'file') });
        };

        let result;
        try {
          result = await ctx.interruptible(
            restore(store, snap, {
              target,
              ...(sub !== undefined ? { subPath: sub } : {}),
              onProgress,
              onWarning: (w) => ctx.out.warn(`${w.path}: ${w.message}`),
            }),
            RESTORE_INTERRUPTED,
          );
        } finally {
          ctx.stopProgress(bar);
        }
        const durationMs = performance.now() - started;
        const code = result.warnings.length > 0 ? ExitCode.Partial : ExitCode.Ok;
        if (ctx.out.json) {
          ctx.out.jsonDocument({
            snapshot: snap.id,
            path: sub ?? '/',
            target,
            files: result.files,
            dirs: result.dirs,
            bytes: result.bytes,
            durationMs: Math.round(durationMs),
            warnings: result.warnings,
          });
          return code;
        }
        ctx.out.info(
          `restored ${plural(result.files, 'file')}, ${plural(result.dirs, 'directory', 'directories')} (${formatBytes(result.bytes)}) ` +
            `from snapshot ${shortId(snap.id)}${sub ? `:${sub}` : ''} to ${target} in ${formatDuration(durationMs)}`,
        );
        if (result.warnings.length > 0) ctx.out.info(`${plural(result.warnings.length, 'entry', 'entries')} could not be restored (see the warnings above)`);
        return code;
      }),
    );
  examples(cmd, [
    'arca restore latest --target /tmp/restore',
    'arca restore latest:/home/me/docs --target ~/docs-restored',
    'arca restore 1a2b3c4d:/etc/hosts --target /tmp/r',
  ]);
  cmd.addHelpText(
    'after',
    '\nA directory path restores its contents into the target; a file path restores the file into the target.\nEntries that cannot be restored are reported as warnings, and the exit status is 3.',
  );
}
