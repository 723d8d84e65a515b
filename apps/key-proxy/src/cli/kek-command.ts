import path from 'node:path';
import type { Command } from 'commander';
import { examples } from './help.ts';
import type { CliIo } from './cli-io.ts';

/** `arca-key-proxy kek create-local --out FILE`: a new local KEK file (32 random bytes, hex, mode 0600). */
export function registerKekCommand(program: Command, io: CliIo): void {
  const kek = program.command('kek').description('key-encryption keys');
  const create = kek
    .command('create-local')
    .description('create a local KEK file (development and single-host installs; refuses to overwrite a file)')
    .requiredOption('--out <file>', 'where to write it (mode 0600)')
    .option('--json', 'print { path, kekId } as JSON')
    .action(async (opts: { out: string; json?: boolean }) => {
      const { createLocalKekFile } = await import('../kek/local-kek-provider.ts');
      const created = await createLocalKekFile(path.resolve(opts.out));
      if (opts.json) io.stdout.write(`${JSON.stringify(created)}\n`);
      else io.stdout.write(`created local KEK ${created.path} (id ${created.kekId}); set ARCA_KP_LOCAL_KEK_FILE=${created.path}\n`);
    });
  examples(create, [
    'arca-key-proxy kek create-local --out /etc/arca-key-proxy/kek-2025.hex',
    'rotation: create a new one, set it as ARCA_KP_LOCAL_KEK_FILE and move the old path to ARCA_KP_LOCAL_PREVIOUS_KEK_FILES',
  ]);
}
