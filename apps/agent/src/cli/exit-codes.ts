/** Process exit statuses of `arca`. Scripts rely on these: keep them stable. */
export const ExitCode = {
  /** the command did everything it was asked to */
  Ok: 0,
  /** the command failed (store not found, wrong passphrase, damaged store, ...) */
  Error: 1,
  /** the command line is wrong (unknown option, missing argument, ...) */
  Usage: 2,
  /** the command finished but left something out (a file could not be read or written) */
  Partial: 3,
  /** interrupted by Ctrl-C / SIGINT (128 + 2) */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit status:
  0    success
  1    error (the message and a hint are printed on stderr)
  2    usage error (unknown option, missing argument, ...)
  3    finished, but some files were skipped (see the warnings)
  130  interrupted (Ctrl-C)`;
