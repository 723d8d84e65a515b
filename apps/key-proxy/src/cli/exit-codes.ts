/** Exit statuses of `arca-key-proxy`. Scripts rely on these: keep them stable. */
export const ExitCode = {
  /** done (serve: stopped by SIGTERM/SIGINT after a clean shutdown) */
  Ok: 0,
  /** failed: invalid configuration, unusable data directory, no such grant, broken audit chain... */
  Error: 1,
  /** the command line is wrong (unknown option, missing or invalid argument) */
  Usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit status:
  0    success
  1    error (the message is printed on stderr)
  2    usage error (unknown option, missing or invalid argument)`;
