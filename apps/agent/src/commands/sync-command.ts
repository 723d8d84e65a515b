import { ArcaErrorCode, isArcaError, sync, type SyncProgress } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { openDestinationStore, type DestinationOptions } from '../cli/destination-store.ts';
import { InterruptedError } from '../cli/errors.ts';
import { formatBytes, formatDuration, plural, shortId } from '../cli/format.ts';
import { openStore } from '../cli/store-options.ts';

export const SYNC_INTERRUPTED = 'interrupted; what was copied is stored and indexed in the destination, run sync again to continue';

export function registerSyncCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('sync')
    .description('copy snapshots to another store (re-encrypted under its keys); snapshots already copied are skipped')
    .argument('[snapshot...]', 'snapshots of this store to copy (ID, prefix or `latest`; default: every snapshot not yet copied)')
    .requiredOption('--to <location>', 'the destination store: a path, fs:///path or s3://bucket/prefix')
    .option('--to-passphrase-file <file>', 'the destination\'s passphrase, first line of FILE (env: ARCA_TO_PASSPHRASE_FILE, or ARCA_TO_PASSPHRASE)')
    .option('--to-key-proxy <url>', 'managed destination: its key proxy (env: ARCA_TO_KEY_PROXY_URL)')
    .option('--to-key-proxy-token-file <file>', 'managed destination: file holding its job token (env: ARCA_TO_KEY_PROXY_TOKEN_FILE, or ARCA_TO_KEY_PROXY_TOKEN)')
    .action(
      app.action(async (ctx, command) => {
        const refs = command.processedArgs[0] as string[];
        const opts = command.opts<DestinationOptions>();
        const source = await openStore(ctx);
        const dest = await openDestinationStore(ctx, opts);
        const started = performance.now();
        const bar = ctx.startProgress('sync', 'bytes');
        const onProgress = (p: SyncProgress) =>
          bar?.update({ done: p.bytesCopied, detail: `snapshot ${Math.min(p.snapshotsDone + 1, p.snapshotsTotal)}/${p.snapshotsTotal}, ${plural(p.blobsCopied, 'blob')}` });
        // first Ctrl-C: finish the blobs in flight and index them; a second one quits at once
        const controller = new AbortController();
        const firstSigint = () => {
          ctx.out.warn('interrupting: indexing what was copied so far (Ctrl-C again to quit at once)');
          controller.abort();
        };
        ctx.io.signals?.once('SIGINT', firstSigint);
        let result;
        try {
          result = await ctx.interruptible(
            sync(source, dest, { ...(refs.length > 0 ? { snapshots: refs } : {}), signal: controller.signal, onProgress }).catch((err: unknown) => {
              throw isArcaError(err, ArcaErrorCode.Interrupted) ? new InterruptedError(SYNC_INTERRUPTED) : err;
            }),
            SYNC_INTERRUPTED,
            2,
          );
        } finally {
          ctx.io.signals?.off('SIGINT', firstSigint);
          ctx.stopProgress(bar);
        }
        const durationMs = performance.now() - started;
        if (ctx.out.json) {
          ctx.out.jsonDocument({
            copied: result.copied.map((c) => ({ source: c.source, id: c.id, time: c.snapshot.time, blobsNew: c.blobsNew, bytesNew: c.bytesNew, durationMs: c.durationMs })),
            skipped: result.skipped,
            stats: result.stats,
            durationMs: Math.round(durationMs),
          });
          return;
        }
        for (const c of result.copied) ctx.out.result(`copied ${shortId(c.source)} -> ${shortId(c.id)} (${formatBytes(c.bytesNew)} new)`);
        ctx.out.info(
          `copied ${plural(result.copied.length, 'snapshot')} (${formatBytes(result.stats.bytesCopied)} in ${plural(result.stats.dataBlobsCopied, 'new blob')}), ` +
            `${plural(result.skipped.length, 'snapshot')} already in the destination, in ${formatDuration(durationMs)}`,
        );
      }),
    );
  examples(cmd, [
    'ARCA_TO_PASSPHRASE=... arca sync --to /mnt/offsite/arca',
    'arca sync --to s3://offsite/arca --to-passphrase-file ~/.arca-offsite latest',
    'arca sync 1a2b3c4d 5e6f7a8b --to /mnt/usb/arca --to-passphrase-file /root/usb.pass --json',
    'arca sync --to s3://dr/arca --to-key-proxy https://kp.example --to-key-proxy-token-file dest.token',
  ]);
  cmd.addHelpText(
    'after',
    `
Every blob is decrypted with this store's keys and stored again under the destination's: the
two stores share no key. A copy records the snapshot it copies (\`original\`), so running sync
again copies only what is new. Chunks keep this store's boundaries (see docs/cli.md, "arca sync").`,
  );
}
