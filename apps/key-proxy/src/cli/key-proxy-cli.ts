import { Command, CommanderError } from 'commander';
import { isKeyProxyError } from '../errors/key-proxy-error.ts';
import { KEY_PROXY_VERSION } from '../version.ts';
import { registerAuditCommand } from './audit-command.ts';
import { CliFailure, processIo, UsageError, type CliIo } from './cli-io.ts';
import { EXIT_CODES_HELP, ExitCode } from './exit-codes.ts';
import { registerGrantCommand } from './grant-command.ts';
import { examples } from './help.ts';
import { registerKekCommand } from './kek-command.ts';
import { registerServeCommand } from './serve-command.ts';

/**
 * The `arca-key-proxy` command line: `serve`, and the key custodian's commands operating directly
 * on the proxy's state directory (`grant`, `kek`, `audit`). Returns the exit status; `onExit` is
 * for `serve`'s forced exit on a second signal.
 */
export async function runKeyProxyCli(argv: string[], io: CliIo = processIo(), onExit: (code: number) => void = (code) => process.exit(code)): Promise<number> {
  const program = new Command('arca-key-proxy')
    .description('Arca key proxy: holds managed stores\' master keys and issues per-job keys to authorized agents')
    .version(KEY_PROXY_VERSION, '-V, --version')
    .configureOutput({
      writeOut: (str) => void io.stdout.write(str),
      writeErr: (str) => void io.stderr.write(str),
      outputError: (str, write) => write(`arca-key-proxy: ${str}`),
    })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  registerServeCommand(program, io, onExit);
  registerGrantCommand(program, io);
  registerKekCommand(program, io);
  registerAuditCommand(program, io);
  examples(program, [
    'arca-key-proxy serve --help                 the environment variables',
    'arca-key-proxy kek create-local --out kek.hex',
    'arca-key-proxy grant approve --org acme --store <store id> --agent-key-thumbprint <jkt>',
    'arca-key-proxy grant list',
    'arca-key-proxy audit verify',
  ]);
  program.addHelpText('after', `\nDocumentation: docs/key-proxy.md\n\n${EXIT_CODES_HELP}`);
  try {
    await program.parseAsync(argv, { from: 'node' });
    return ExitCode.Ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    if (err instanceof UsageError) {
      io.stderr.write(`arca-key-proxy: ${err.message}\n(add --help for usage)\n`);
      return ExitCode.Usage;
    }
    if (err instanceof CliFailure || isKeyProxyError(err)) {
      io.stderr.write(`arca-key-proxy: ${err.message}\n`);
      return ExitCode.Error;
    }
    io.stderr.write(`arca-key-proxy: ${err instanceof Error ? err.message : String(err)}\n`);
    if (io.env.ARCA_DEBUG === '1' && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    return ExitCode.Error;
  }
}
