import type { EventEmitter } from 'node:events';

/** A writable the CLI prints to; `columns` is set for terminals. */
export interface CliWritable extends NodeJS.WritableStream {
  columns?: number;
}

/** A readable the CLI reads prompts from; `setRawMode` exists on terminals. */
export interface CliReadable extends NodeJS.ReadableStream {
  setRawMode?: (mode: boolean) => unknown;
  isRaw?: boolean;
}

/** Everything `runCli` touches outside itself, so it can run in-process in tests. */
export interface CliIo {
  stdout: CliWritable;
  stderr: CliWritable;
  stdin: CliReadable;
  env: Record<string, string | undefined>;
  /** which of the standard streams are terminals */
  isTTY: { stdin: boolean; stdout: boolean; stderr: boolean };
  /** where SIGINT is delivered (default: `process`) */
  signals?: EventEmitter;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    isTTY: { stdin: Boolean(process.stdin.isTTY), stdout: Boolean(process.stdout.isTTY), stderr: Boolean(process.stderr.isTTY) },
    signals: process,
  };
}

/** Accept `isTTY: true` as shorthand for all three streams. */
export function normalizeIo(io: Partial<Omit<CliIo, 'isTTY'>> & { isTTY?: boolean | Partial<CliIo['isTTY']> }): CliIo {
  const base = processIo();
  const tty = io.isTTY;
  const isTTY =
    tty === undefined ? (io.stdout || io.stderr || io.stdin ? { stdin: false, stdout: false, stderr: false } : base.isTTY)
    : typeof tty === 'boolean' ? { stdin: tty, stdout: tty, stderr: tty }
    : { stdin: Boolean(tty.stdin), stdout: Boolean(tty.stdout), stderr: Boolean(tty.stderr) };
  return {
    stdout: io.stdout ?? base.stdout,
    stderr: io.stderr ?? base.stderr,
    stdin: io.stdin ?? base.stdin,
    env: io.env ?? base.env,
    isTTY,
    signals: io.signals ?? process,
  };
}
