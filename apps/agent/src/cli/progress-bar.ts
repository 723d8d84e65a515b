import { formatBytes, formatEta, formatRate } from './format.ts';
import type { CliWritable } from './io.ts';
import type { StatusLine } from './output.ts';

export interface ProgressState {
  done: number;
  /** undefined while unknown (e.g. the source scan is still running) */
  total?: number | undefined;
  /** extra text after the numbers, e.g. "120/300 files" */
  detail?: string;
}

export interface ProgressBarOptions {
  stream: CliWritable;
  label: string;
  /** how `done`/`total` are shown: sizes with a rate, or plain counts */
  unit: 'bytes' | 'count';
  /** minimum time between redraws (default 100 ms: ~10 redraws per second) */
  minIntervalMs?: number;
  /** clock, for tests */
  now?: () => number;
  /** redraw periodically even without updates, so rate and ETA stay current (default true) */
  tick?: boolean;
}

const RATE_WINDOW_MS = 5000;
const ERASE_LINE = '\r\x1b[2K';

/**
 * A single status line on a terminal, redrawn in place: label, bar, percentage, done/total, rate
 * and ETA. Only create one when stderr is a TTY and progress is wanted; it writes escape codes.
 */
export class ProgressBar implements StatusLine {
  private readonly stream: CliWritable;
  private label: string;
  private readonly unit: 'bytes' | 'count';
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private state: ProgressState = { done: 0 };
  private samples: { t: number; done: number }[] = [];
  private lastDraw = -Infinity;
  private drawn = false;
  private stopped = false;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(options: ProgressBarOptions) {
    this.stream = options.stream;
    this.label = options.label;
    this.unit = options.unit;
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.now = options.now ?? (() => performance.now());
    if (options.tick ?? true) {
      this.timer = setInterval(() => this.redraw(), 250);
      this.timer.unref();
    }
  }

  setLabel(label: string): void {
    this.label = label;
  }

  /** Record progress; redraws at most every `minIntervalMs`. */
  update(state: ProgressState): void {
    if (this.stopped) return;
    const t = this.now();
    if (state.done < this.state.done) this.samples = []; // a new phase started over
    this.state = state;
    this.samples.push({ t, done: state.done });
    while (this.samples.length > 2 && t - this.samples[0]!.t > RATE_WINDOW_MS) this.samples.shift();
    if (t - this.lastDraw >= this.minIntervalMs) this.draw(t);
  }

  /** Bytes (or items) per second over the last few seconds; undefined until there is enough data. */
  rate(t = this.now()): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last) return undefined;
    const span = Math.max(t, last.t) - first.t;
    if (span < 500) return undefined;
    return ((last.done - first.done) * 1000) / span;
  }

  /** The status line for a terminal `width` columns wide (no escape codes). */
  render(width: number, t = this.now()): string {
    const { done, total, detail } = this.state;
    const fmt = (n: number) => (this.unit === 'bytes' ? formatBytes(n) : String(n));
    const rate = this.rate(t);
    const parts: string[] = [];
    let pct: string | undefined;
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, Math.max(0, done / total));
      pct = `${(frac * 100).toFixed(1).padStart(5)}%`;
      parts.push(`${fmt(Math.min(done, total))}/${fmt(total)}`);
    } else if (total === 0) {
      pct = '100.0%';
    } else {
      parts.push(fmt(done));
    }
    if (rate !== undefined) parts.push(this.unit === 'bytes' ? formatRate(rate) : `${rate.toFixed(rate >= 10 ? 0 : 1)}/s`);
    if (total !== undefined && total > 0 && rate !== undefined) {
      parts.push(`ETA ${rate > 0 ? formatEta(Math.max(0, total - done) / rate) : '--:--'}`);
    }
    if (detail) parts.push(detail);
    const rest = parts.join('  ');
    const max = Math.max(10, width - 1);
    let line: string;
    if (pct !== undefined) {
      const frac = total ? Math.min(1, Math.max(0, done / total)) : 1;
      const fixed = `${this.label} [] ${pct}  ${rest}`.length;
      const barWidth = Math.min(40, max - fixed);
      if (barWidth >= 8) {
        const filled = Math.round(frac * barWidth);
        line = `${this.label} [${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}] ${pct}  ${rest}`;
      } else {
        line = `${this.label} ${pct}  ${rest}`;
      }
    } else {
      line = `${this.label}  ${rest}`;
    }
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
  }

  private draw(t = this.now()): void {
    if (this.stopped) return;
    this.lastDraw = t;
    this.stream.write(`${ERASE_LINE}${this.render(this.stream.columns || 80, t)}`);
    this.drawn = true;
  }

  redraw(): void {
    this.draw();
  }

  /** Erase the line (before other output); the next update draws it again. */
  clear(): void {
    if (!this.drawn) return;
    this.stream.write(ERASE_LINE);
    this.drawn = false;
  }

  /** Erase the line for good. */
  stop(): void {
    this.clear();
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }
}
