import { Command, CommanderError } from 'commander';
import { CliApp, examples } from './cli/command.ts';
import { reportError } from './cli/errors.ts';
import { EXIT_CODES_HELP, ExitCode } from './cli/exit-codes.ts';
import { normalizeIo, type CliIo } from './cli/io.ts';
import { Output } from './cli/output.ts';
import { STORE_OPTION_HELP } from './cli/store-options.ts';
import { registerAgentCommand } from './commands/agent-command.ts';
import { registerBackupCommand } from './commands/backup-command.ts';
import { registerCatCommand } from './commands/cat-command.ts';
import { registerCheckCommand } from './commands/check-command.ts';
import { registerDiffCommand } from './commands/diff-command.ts';
import { registerFindCommand } from './commands/find-command.ts';
import { registerForgetCommand } from './commands/forget-command.ts';
import { registerInitCommand } from './commands/init-command.ts';
import { registerKeyCommand } from './commands/key-command.ts';
import { registerLsCommand } from './commands/ls-command.ts';
import { registerPruneCommand } from './commands/prune-command.ts';
import { registerRepairCommand } from './commands/repair-command.ts';
import { registerRestoreCommand } from './commands/restore-command.ts';
import { registerSnapshotsCommand } from './commands/snapshots-command.ts';
import { registerSyncCommand } from './commands/sync-command.ts';
import { registerUnlockCommand } from './commands/unlock-command.ts';
import { ARCA_VERSION, registerVersionCommand } from './commands/version-command.ts';

export type { CliIo } from './cli/io.ts';
export { ExitCode } from './cli/exit-codes.ts';

/** What `runCli` accepts: any part of CliIo (the rest comes from `process`); `isTTY: true|false` sets all three. */
export type CliIoInput = Partial<Omit<CliIo, 'isTTY'>> & { isTTY?: boolean | Partial<CliIo['isTTY']> };

const ENVIRONMENT_HELP = `Environment:
  ARCA_STORE            store location (instead of --store)
  ARCA_PASSPHRASE       the store's passphrase
  ARCA_PASSPHRASE_FILE  file whose first line is the passphrase (instead of --passphrase-file)
  ARCA_NEW_PASSPHRASE   the new passphrase for \`arca key add\`
  ARCA_TO_PASSPHRASE, ARCA_TO_PASSPHRASE_FILE, ARCA_TO_KEY_PROXY_URL, ARCA_TO_KEY_PROXY_TOKEN(_FILE)
                        \`arca sync\`: the destination store's credentials
  ARCA_KEY_PROXY_URL    managed stores: the key proxy's URL (instead of --key-proxy)
  ARCA_KEY_PROXY_TOKEN_FILE  file holding the job token (instead of --key-proxy-token-file)
  ARCA_KEY_PROXY_TOKEN  the job token itself
  ARCA_AGENT_KEY_FILE   this agent's private key (instead of --agent-key)
  ARCA_KEY_PROXY_RETRY_SECONDS  how long to retry an unreachable or overloaded key proxy (default 60)
  ARCA_DEBUG=1          print stack traces with errors
  ARCA_S3_ENDPOINT      S3-compatible endpoint URL (or ?endpoint=... in the s3:// location)
  ARCA_S3_PATH_STYLE    true/false: path-style S3 addressing (or ?path-style=...)
  AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...   the usual AWS settings

Without ARCA_PASSPHRASE, --passphrase-file or ARCA_PASSPHRASE_FILE, arca asks for the passphrase
when run in a terminal. A store managed by a key proxy needs no passphrase: it needs the key
proxy's URL, a job token from the control plane and this agent's key (see \`arca agent\`).`;

/** The commander program for one run (commander keeps parse state, so never reuse it). */
export function buildProgram(app: CliApp): Command {
  const { io } = app;
  const program = new Command('arca');
  program
    .description('Arca: end-to-end encrypted, deduplicating backups')
    .version(ARCA_VERSION, '-V, --version', 'print the version of arca')
    .option('--store <location>', STORE_OPTION_HELP)
    .option('--passphrase-file <file>', 'read the passphrase from the first line of FILE (env: ARCA_PASSPHRASE_FILE, or ARCA_PASSPHRASE)')
    .option('--key-proxy <url>', 'managed stores: the key proxy to get keys from (env: ARCA_KEY_PROXY_URL); with init: create a managed store')
    .option('--key-proxy-token-file <file>', 'managed stores: file holding the job token (env: ARCA_KEY_PROXY_TOKEN_FILE, or ARCA_KEY_PROXY_TOKEN)')
    .option('--agent-key <file>', 'managed stores: this agent\'s private key, PKCS#8 PEM, mode 0600 (env: ARCA_AGENT_KEY_FILE)')
    .option('--json', 'machine-readable output: one JSON document (JSON Lines for ls, find, diff) on stdout')
    .option('-q, --quiet', 'print only results and errors')
    .option('--no-progress', 'do not show a progress line')
    .configureOutput({
      writeOut: (str) => void io.stdout.write(str),
      writeErr: (str) => void io.stderr.write(str),
      outputError: (str, write) => write(`arca: ${str}`),
      getOutHelpWidth: () => (io.isTTY.stdout ? (io.stdout.columns ?? 80) : 80),
      getErrHelpWidth: () => (io.isTTY.stderr ? (io.stderr.columns ?? 80) : 80),
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  registerInitCommand(program, app);
  registerBackupCommand(program, app);
  registerSnapshotsCommand(program, app);
  registerLsCommand(program, app);
  registerCatCommand(program, app);
  registerRestoreCommand(program, app);
  registerDiffCommand(program, app);
  registerFindCommand(program, app);
  registerCheckCommand(program, app);
  registerForgetCommand(program, app);
  registerPruneCommand(program, app);
  registerRepairCommand(program, app);
  registerSyncCommand(program, app);
  registerKeyCommand(program, app);
  registerUnlockCommand(program, app);
  registerAgentCommand(program, app);
  registerVersionCommand(program, app);

  examples(program, [
    'export ARCA_STORE=/mnt/backup/arca',
    'arca init',
    'arca backup ~/Documents --tag daily',
    'arca snapshots',
    'arca ls latest:/home/me/Documents',
    'arca restore latest:/home/me/Documents --target /tmp/restore',
    'arca forget --keep-daily 7 --keep-weekly 4 --prune',
  ]);
  program.addHelpText('after', `\n${ENVIRONMENT_HELP}\n\n${EXIT_CODES_HELP}`);
  return program;
}

/**
 * Run the CLI in-process. `argv` is like `process.argv` (node, script, ...args). Returns the exit
 * status; never calls process.exit. After 130 (interrupted) work may still be running in the
 * background, so a process should exit right away (bin/arca.mjs does).
 */
export async function runCli(argv: string[], ioInput: CliIoInput = {}): Promise<number> {
  const io = normalizeIo(ioInput);
  const app = new CliApp(io);
  try {
    await buildProgram(app).parseAsync(argv, { from: 'node' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return ExitCode.Ok;
      if (argv.includes('--json') && err.code !== 'commander.help') {
        io.stdout.write(`${JSON.stringify({ error: { code: 'USAGE', message: err.message.replace(/^error: /, '') } })}\n`);
      }
      return ExitCode.Usage;
    }
    return reportError(err, new Output(io, { json: false, quiet: false }), io.env);
  }
  return app.exitCode;
}
