import type { Command } from 'commander';
import { CliContext, type GlobalOptions } from './context.ts';
import { reportError } from './errors.ts';
import { ExitCode } from './exit-codes.ts';
import type { CliIo } from './io.ts';

/** A command's body: returns its exit status (default 0). Throwing reports the error. */
export type CommandHandler = (ctx: CliContext, cmd: Command) => Promise<number | void>;

/** Shared by all command modules: the I/O of this run and the exit status of the command that ran. */
export class CliApp {
  readonly io: CliIo;
  exitCode: number = ExitCode.Ok;

  constructor(io: CliIo) {
    this.io = io;
  }

  /** Wrap a handler as a commander action: builds the context, reports errors, cleans up. */
  action(handler: CommandHandler): (...args: unknown[]) => Promise<void> {
    return async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      const ctx = new CliContext(this.io, globalOptions(cmd));
      let code: number;
      try {
        code = (await handler(ctx, cmd)) ?? ExitCode.Ok;
      } catch (err) {
        code = reportError(err, ctx.out, this.io.env);
      } finally {
        await ctx.dispose();
      }
      this.exitCode = code;
    };
  }
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{
    store?: string;
    passphraseFile?: string;
    keyProxy?: string;
    keyProxyTokenFile?: string;
    agentKey?: string;
    json?: boolean;
    quiet?: boolean;
    progress?: boolean;
  }>();
  return {
    ...(o.store ? { store: o.store } : {}),
    ...(o.passphraseFile ? { passphraseFile: o.passphraseFile } : {}),
    ...(o.keyProxy ? { keyProxy: o.keyProxy } : {}),
    ...(o.keyProxyTokenFile ? { keyProxyTokenFile: o.keyProxyTokenFile } : {}),
    ...(o.agentKey ? { agentKey: o.agentKey } : {}),
    json: Boolean(o.json),
    quiet: Boolean(o.quiet),
    progress: o.progress !== false,
  };
}

/** Append an "Examples:" section to a command's --help. */
export function examples(cmd: Command, lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => (l === '' ? '' : `  ${l}`)).join('\n')}`);
}
