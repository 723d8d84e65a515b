import path from 'node:path';
import { findSnapshots, type SnapshotRecord } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { formatBytes, formatTime, plural, renderTable, shortId } from '../cli/format.ts';
import { collect } from '../cli/option-parsers.ts';
import { openStore } from '../cli/store-options.ts';

interface SnapshotsOptions {
  host?: string;
  tag?: string[];
  path?: string[];
}

/** The JSON form of a snapshot, shared by `snapshots`, `forget` and `find`. */
export function snapshotJson(rec: SnapshotRecord): Record<string, unknown> {
  const s = rec.snapshot;
  return {
    id: rec.id,
    shortId: shortId(rec.id),
    time: s.time,
    hostname: s.hostname,
    username: s.username,
    tags: s.tags,
    paths: s.paths,
    parent: s.parent ?? null,
    excludes: s.excludes ?? [],
    programVersion: s.programVersion,
    summary: s.summary ?? null,
  };
}

/** Table rows: ID, time, host, tags, paths (one per line), size. */
export function snapshotRows(records: SnapshotRecord[], extra?: (rec: SnapshotRecord) => string): string[][] {
  return records.map((rec) => {
    const s = rec.snapshot;
    const row = [shortId(rec.id), formatTime(s.time), s.hostname, s.tags.join(','), s.paths.join('\n'), s.summary ? formatBytes(s.summary.bytesTotal) : ''];
    if (extra) row.push(extra(rec));
    return row;
  });
}

export const SNAPSHOT_HEADERS = ['ID', 'Time', 'Host', 'Tags', 'Paths', 'Size'];

export function registerSnapshotsCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('snapshots')
    .description('list snapshots, oldest first')
    .option('--host <name>', 'only snapshots of this host')
    .option('--tag <tag>', 'only snapshots with this tag (repeatable: all must match)', collect)
    .option('--path <path>', 'only snapshots of exactly these paths (repeatable)', collect)
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<SnapshotsOptions>();
        const store = await openStore(ctx);
        const records = await findSnapshots(store, {
          ...(opts.host ? { hostname: opts.host } : {}),
          ...(opts.tag ? { tags: opts.tag } : {}),
          ...(opts.path ? { paths: opts.path.map((p) => path.resolve(p)) } : {}),
        });
        if (ctx.out.json) {
          ctx.out.jsonDocument(records.map(snapshotJson));
          return;
        }
        if (records.length === 0) {
          ctx.out.info('no snapshots' + (opts.host || opts.tag || opts.path ? ' match' : ' yet; create one with `arca backup PATH`'));
          return;
        }
        ctx.out.result(renderTable(SNAPSHOT_HEADERS, snapshotRows(records)));
        ctx.out.info(plural(records.length, 'snapshot'));
      }),
    );
  examples(cmd, ['arca snapshots', 'arca snapshots --host laptop --tag daily', 'arca snapshots --path ~/Documents', 'arca snapshots --json | jq -r ".[].id"']);
}
