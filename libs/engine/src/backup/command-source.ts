import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';

/** A command whose stdout is backed up as a stream (backupStream), e.g. pg_dump. */
export interface CommandSource {
  /** the command's stdout */
  readonly stream: AsyncIterable<Uint8Array>;
  /**
   * Resolves once the command exited with status 0; rejects with ArcaError(SOURCE_FAILED) naming
   * its exit status or signal and the tail of its stderr when it did not (or could not start).
   */
  finished(): Promise<void>;
  /** Stop the command (SIGTERM, then SIGKILL after 5 s) if it still runs; safe to call any time. */
  kill(): void;
  /** what the command wrote on stderr (its last STDERR_TAIL_BYTES bytes) */
  stderrTail(): string;
}

export interface CommandSourceOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** How much of a command's stderr is kept for error messages and warnings. */
export const STDERR_TAIL_BYTES = 8192;
/** How much of it an error message quotes. */
const MESSAGE_TAIL_LINES = 10;
const MESSAGE_TAIL_CHARS = 1500;
const KILL_GRACE_MS = 5000;

/**
 * Start `command` with `args` — no shell, so nothing in them is interpreted — with stdin closed,
 * stdout piped to the backup and stderr collected. Messages name the program only (argv[0]'s
 * base name), never its arguments, which may carry connection strings.
 */
export function spawnCommandSource(command: string, args: readonly string[], options: CommandSourceOptions = {}): CommandSource {
  const program = path.basename(command);
  const child = spawn(command, [...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    shell: false,
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  // Consume stdout from the start: Node discards the unread output of a child that has exited
  // when nothing listens to it yet (the backup may still be opening the store).
  const stdout = new PassThrough({ highWaterMark: 1024 * 1024 });
  child.stdout.pipe(stdout);
  let tail = Buffer.alloc(0);
  child.stderr.on('data', (d: Buffer) => {
    tail = Buffer.concat([tail, d]);
    if (tail.length > STDERR_TAIL_BYTES) tail = tail.subarray(tail.length - STDERR_TAIL_BYTES);
  });
  let spawnError: NodeJS.ErrnoException | undefined;
  let exited = false;
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnError ??= err;
      // a command that never started emits no 'close' of its own
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  void done.then(() => {
    exited = true;
  });
  const stderrTail = () => tail.toString('utf8');

  return {
    stream: stdout,
    stderrTail,
    finished: async () => {
      const { code, signal } = await done;
      if (spawnError && child.pid === undefined) {
        const why = spawnError.code === 'ENOENT' ? 'not found (is it installed and on PATH?)' : `${spawnError.code ?? ''} ${spawnError.message}`.trim();
        throw new ArcaError(ArcaErrorCode.SourceFailed, `cannot run command "${program}": ${why}; no snapshot was saved`, {
          hint: 'check the command after `--`',
        });
      }
      if (code === 0) return;
      const status = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      const said = quoteTail(stderrTail());
      throw new ArcaError(ArcaErrorCode.SourceFailed, `command "${program}" ${status}; no snapshot was saved${said ? `. Its stderr ended with:\n${said}` : ' (it wrote nothing on stderr)'}`, {
        hint: 'fix the command so it exits with status 0; data it wrote before failing is not kept in any snapshot',
      });
    },
    kill: () => {
      if (exited || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, KILL_GRACE_MS);
      timer.unref();
    },
  };
}

/** The last lines of a command's stderr, indented, for an error message. */
function quoteTail(text: string): string {
  const lines = text.replace(/\s+$/, '').split('\n').filter((l) => l.trim() !== '');
  let quoted = lines.slice(-MESSAGE_TAIL_LINES).map((l) => `  ${l}`).join('\n');
  if (quoted.length > MESSAGE_TAIL_CHARS) quoted = `  …${quoted.slice(quoted.length - MESSAGE_TAIL_CHARS)}`;
  return quoted;
}
