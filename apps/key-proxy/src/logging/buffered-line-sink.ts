import { writeSync } from 'node:fs';

/**
 * Collects log lines and writes them in one call every `flushMs` (or once `maxBytes` wait): a
 * write to a pipe is a system call that wakes its reader, and one per request cost the proxy
 * ~0.6 ms of CPU per request under load (profiled: 15 % of its CPU during a backup). Lines reach
 * the output at most `flushMs` late; warnings and errors go out at once, and whatever is
 * buffered is written synchronously when the process exits.
 */
export class BufferedLineSink {
  private lines: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly fd: number;
  private readonly flushMs: number;
  private readonly maxBytes: number;

  constructor(options: { fd: number; flushMs?: number; maxBytes?: number }) {
    this.fd = options.fd;
    this.flushMs = options.flushMs ?? 100;
    this.maxBytes = options.maxBytes ?? 64 * 1024;
    process.once('exit', () => this.flush());
  }

  write(line: string, urgent = false): void {
    this.lines.push(line);
    this.bytes += line.length;
    if (urgent || this.bytes >= this.maxBytes) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => this.flush(), this.flushMs).unref();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return;
    const data = this.lines.join('');
    this.lines = [];
    this.bytes = 0;
    try {
      writeSync(this.fd, data);
    } catch {
      // stdout closed (EPIPE) or full non-blocking pipe (EAGAIN): logs are best effort
    }
  }
}

let stdoutSink: BufferedLineSink | undefined;

/** The process-wide buffered sink on stdout. */
export function bufferedStdout(): BufferedLineSink {
  stdoutSink ??= new BufferedLineSink({ fd: 1 });
  return stdoutSink;
}
