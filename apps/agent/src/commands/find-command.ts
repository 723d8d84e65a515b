import { findInSnapshots, findSnapshots, resolveSnapshot, type SnapshotRecord } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { formatTime, plural, shortId } from '../cli/format.ts';
import { collect } from '../cli/option-parsers.ts';
import { openStore, takeSharedLock } from '../cli/store-options.ts';
import { displayPath, longLine, nodeJson } from '../cli/tree-format.ts';

interface FindOptions {
  snapshot?: string[];
  host?: string;
  tag?: string[];
  long?: boolean;
}

export function registerFindCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('find')
    .description('find files and directories by name or path in snapshots')
    .argument('<pattern...>', 'glob patterns: without "/" matched against names, with "/" against paths')
    .option('-s, --snapshot <snapshot>', 'search only this snapshot (repeatable; default: all snapshots)', collect)
    .option('--host <name>', 'search only snapshots of this host')
    .option('--tag <tag>', 'search only snapshots with this tag (repeatable)', collect)
    .option('-l, --long', 'show mode, owner, size and modification time')
    .action(
      app.action(async (ctx, command) => {
        const [patterns] = command.processedArgs as [string[]];
        const opts = command.opts<FindOptions>();
        const store = await openStore(ctx);
        await takeSharedLock(ctx, store, 'find'); // findInSnapshots loads the index itself
        let snapshots: SnapshotRecord[];
        if (opts.snapshot) {
          snapshots = [];
          for (const ref of opts.snapshot) snapshots.push(await resolveSnapshot(store, ref));
        } else {
          snapshots = await findSnapshots(store, { ...(opts.host ? { hostname: opts.host } : {}), ...(opts.tag ? { tags: opts.tag } : {}) });
        }
        let current: string | undefined;
        let matches = 0;
        const seen = new Set<string>();
        for await (const m of findInSnapshots(store, patterns, snapshots)) {
          matches++;
          seen.add(m.snapshot.id);
          if (ctx.out.json) {
            ctx.out.jsonLine({ snapshot: m.snapshot.id, shortId: shortId(m.snapshot.id), time: m.snapshot.snapshot.time, hostname: m.snapshot.snapshot.hostname, ...nodeJson(m.path, m.node) });
            continue;
          }
          if (m.snapshot.id !== current) {
            if (current !== undefined) ctx.out.result('');
            current = m.snapshot.id;
            const s = m.snapshot.snapshot;
            ctx.out.result(`snapshot ${shortId(m.snapshot.id)} of ${s.paths.join(', ')} at ${formatTime(s.time)} (${s.hostname}):`);
          }
          ctx.out.result(`  ${opts.long ? longLine(m.path, m.node) : displayPath(m.path, m.node)}`);
        }
        if (!ctx.out.json) {
          if (matches === 0) ctx.out.info(`no matches in ${plural(snapshots.length, 'snapshot')}`);
          else ctx.out.info(`\n${plural(matches, 'match', 'matches')} in ${plural(seen.size, 'snapshot')} (of ${snapshots.length} searched)`);
        }
      }),
    );
  examples(cmd, [
    "arca find '*.pdf'",
    "arca find 'report-202?-*.xlsx' --snapshot latest",
    "arca find '/home/*/.ssh/**' --host laptop",
    "arca find 'docs/*.md' --json | jq -r .path",
  ]);
  cmd.addHelpText(
    'after',
    `
Patterns: * matches within a name, ? one character, ** any number of directories, [a-z] a class.
A pattern without "/" matches names at any depth; "/a/b*" is anchored at the root; "a/b*" matches at any depth.
Quote patterns so the shell does not expand them. With --json, prints one JSON object per match (JSON Lines).`,
  );
}
