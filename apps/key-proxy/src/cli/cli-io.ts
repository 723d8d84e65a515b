import { ExitCode } from './exit-codes.ts';

/** Where a CLI run reads its environment and writes its output (process's own by default; tests pass their own). */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** A command-line mistake: exit status 2. */
export class UsageError extends Error {
  readonly exitCode = ExitCode.Usage;

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure the user can act on (no grant to revoke, broken audit chain): exit status 1, message only. */
export class CliFailure extends Error {
  readonly exitCode = ExitCode.Error;

  constructor(message: string) {
    super(message);
    this.name = 'CliFailure';
  }
}
