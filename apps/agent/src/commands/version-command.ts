import { readFileSync } from 'node:fs';
import { ENGINE_VERSION } from '@arca/engine';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';

/** The version of the `arca` CLI (apps/agent/package.json). */
export const ARCA_VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export function versionInfo(): { arca: string; engine: string; node: string; platform: string; arch: string } {
  return { arca: ARCA_VERSION, engine: ENGINE_VERSION, node: process.version, platform: process.platform, arch: process.arch };
}

export function registerVersionCommand(program: Command, app: CliApp): void {
  const cmd = program
    .command('version')
    .description('print the version of arca, Node.js and the platform')
    .action(
      app.action(async (ctx) => {
        const v = versionInfo();
        if (ctx.out.json) {
          ctx.out.jsonDocument(v);
          return;
        }
        ctx.out.result(`arca ${v.arca} (engine ${v.engine})`);
        ctx.out.result(`node ${v.node}`);
        ctx.out.result(`platform ${v.platform}-${v.arch}`);
      }),
    );
  examples(cmd, ['arca version', 'arca version --json']);
}
