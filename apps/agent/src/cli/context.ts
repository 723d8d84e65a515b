import { InterruptedError } from './errors.ts';
import type { CliIo } from './io.ts';
import { Output } from './output.ts';
import { ProgressBar } from './progress-bar.ts';

/** Options every command accepts (defined on the program, usable before or after the command name). */
export interface GlobalOptions {
  store?: string;
  passphraseFile?: string;
  /** managed stores: the key proxy's URL, the job token file, the agent key file */
  keyProxy?: string;
  keyProxyTokenFile?: string;
  agentKey?: string;
  json: boolean;
  quiet: boolean;
  /** false with --no-progress */
  progress: boolean;
}

/** What a running command works with: I/O, global options, output, progress and clean-up. */
export class CliContext {
  readonly io: CliIo;
  readonly globals: GlobalOptions;
  readonly out: Output;
  private readonly cleanups: (() => unknown)[] = [];

  constructor(io: CliIo, globals: GlobalOptions) {
    this.io = io;
    this.globals = globals;
    this.out = new Output(io, { json: globals.json, quiet: globals.quiet });
  }

  /** Progress is drawn only on a terminal, and never with --json, --quiet or --no-progress. */
  get progressEnabled(): boolean {
    return this.io.isTTY.stderr && this.globals.progress && !this.globals.json && !this.globals.quiet;
  }

  /** A status line on stderr, or undefined when progress is off. Stopped automatically at the end. */
  startProgress(label: string, unit: 'bytes' | 'count'): ProgressBar | undefined {
    if (!this.progressEnabled) return undefined;
    const bar = new ProgressBar({ stream: this.io.stderr, label, unit });
    this.out.setStatusLine(bar);
    this.onCleanup(() => this.stopProgress(bar));
    return bar;
  }

  stopProgress(bar: ProgressBar | undefined): void {
    if (!bar) return;
    bar.stop();
    this.out.setStatusLine(undefined);
  }

  /** Run `fn` when the command ends, successfully or not (last registered runs first). */
  onCleanup(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  async dispose(): Promise<void> {
    while (this.cleanups.length > 0) {
      const fn = this.cleanups.pop()!;
      try {
        await fn();
      } catch {
        // clean-up failures must not hide the command's own result
      }
    }
  }

  /**
   * Run work that reports `{ phase, done, total }` (check, prune, repair) with a progress line
   * labelled "<label> <phase>" on a terminal.
   */
  async withPhaseProgress<T>(label: string, run: (onProgress: (p: { phase: string; done: number; total: number }) => void) => Promise<T>): Promise<T> {
    const bar = this.startProgress(label, 'count');
    try {
      return await run((p) => {
        if (!bar) return;
        bar.setLabel(`${label} ${p.phase}`);
        bar.update({ done: p.done, total: p.total });
      });
    } finally {
      this.stopProgress(bar);
    }
  }

  /**
   * Await `work`, but give up with an InterruptedError (exit 130) on the `signalsToQuit`-th SIGINT
   * (commands that stop gracefully on the first one pass 2). The work itself keeps running: the
   * caller must end the process (bin/arca.mjs does for exit status 130).
   */
  async interruptible<T>(work: Promise<T>, message: string, signalsToQuit = 1): Promise<T> {
    const signals = this.io.signals;
    if (!signals) return work;
    let onSignal: (() => void) | undefined;
    let received = 0;
    const interrupted = new Promise<never>((_, reject) => {
      onSignal = () => {
        if (++received >= signalsToQuit) reject(new InterruptedError(message));
      };
      signals.on('SIGINT', onSignal);
    });
    try {
      return await Promise.race([work, interrupted]);
    } finally {
      signals.off('SIGINT', onSignal!);
      work.catch(() => undefined);
    }
  }
}
