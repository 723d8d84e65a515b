import { isArcaError } from '@arca/engine';
import { ExitCode } from './exit-codes.ts';
import type { Output } from './output.ts';

/** An error raised by the CLI itself (not the engine): same shape as ArcaError, plus an exit status. */
export class CliError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CliError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.Error;
  }
}

/** A command line that cannot work (bad option value, missing argument): exit status 2. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super('USAGE', message, { exitCode: ExitCode.Usage, ...(hint === undefined ? {} : { hint }) });
    this.name = 'UsageError';
  }
}

/** Ctrl-C / SIGINT: exit status 130. */
export class InterruptedError extends CliError {
  constructor(message = 'interrupted') {
    super('INTERRUPTED', message, { exitCode: ExitCode.Interrupted });
    this.name = 'InterruptedError';
  }
}

export interface ErrorReport {
  code: string;
  message: string;
  hint?: string;
  exitCode: number;
}

/** Classify any thrown value into what the user sees. */
export function describeError(err: unknown): ErrorReport {
  if (err instanceof CliError) {
    return { code: err.code, message: err.message, exitCode: err.exitCode, ...(err.hint ? { hint: err.hint } : {}) };
  }
  if (isArcaError(err)) {
    const exitCode = err.code === 'INTERRUPTED' ? ExitCode.Interrupted : ExitCode.Error;
    return { code: err.code, message: err.message, exitCode, ...(err.hint ? { hint: err.hint } : {}) };
  }
  const errno = err as NodeJS.ErrnoException | undefined;
  if (errno && typeof errno === 'object' && typeof errno.code === 'string' && typeof errno.message === 'string') {
    return { code: errno.code, message: errno.message, exitCode: ExitCode.Error, ...systemHint(errno) };
  }
  if (err instanceof Error) return { code: 'UNEXPECTED', message: err.message || err.name, exitCode: ExitCode.Error };
  return { code: 'UNEXPECTED', message: String(err), exitCode: ExitCode.Error };
}

function systemHint(err: NodeJS.ErrnoException): { hint?: string } {
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return { hint: 'check the permissions of the path above' };
    case 'ENOENT':
      return { hint: 'check that the path exists' };
    case 'ENOSPC':
      return { hint: 'free some disk space and run the command again' };
    default:
      return {};
  }
}

/**
 * Print an error the standard way (`arca: error: ...` / `hint: ...` on stderr; with --json also
 * `{"error": {...}}` on stdout) and return the exit status. Stack traces only with ARCA_DEBUG=1.
 */
export function reportError(err: unknown, out: Output, env: Record<string, string | undefined>): number {
  const report = describeError(err);
  out.clearProgress();
  out.error(`arca: error: ${report.message}`);
  if (report.hint) out.error(`hint: ${report.hint}`);
  if (env.ARCA_DEBUG === '1' || env.ARCA_DEBUG === 'true') {
    if (err instanceof Error && err.stack) out.error(err.stack);
    let cause = err instanceof Error ? err.cause : undefined;
    while (cause instanceof Error) {
      out.error(`caused by: ${cause.stack ?? cause.message}`);
      cause = cause.cause;
    }
  }
  if (out.json) {
    out.jsonDocument({ error: { code: report.code, message: out.redact(report.message), ...(report.hint ? { hint: out.redact(report.hint) } : {}) } });
  }
  return report.exitCode;
}
