import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

export interface ScanTotals {
  files: number;
  dirs: number;
  /** sum of regular file sizes */
  bytes: number;
  /** true once the whole tree was walked */
  complete: boolean;
}

export interface SourceScanOptions {
  oneFileSystem?: boolean;
  /** directory/file reads in flight (default 16) */
  concurrency?: number;
  onUpdate?: (totals: ScanTotals) => void;
}

/**
 * A fast, concurrent walk of the backup sources that only counts files and bytes, run alongside
 * the backup to give the progress bar a total and an ETA. Errors are ignored (the backup reports
 * them). Exclude rules are not applied, so the total can be a little high when --exclude is used.
 */
export class SourceScan {
  readonly totals: ScanTotals = { files: 0, dirs: 0, bytes: 0, complete: false };
  private cancelled = false;
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly options: SourceScanOptions;

  constructor(options: SourceScanOptions = {}) {
    this.options = options;
    this.concurrency = options.concurrency ?? 16;
  }

  cancel(): void {
    this.cancelled = true;
    for (const wake of this.waiting.splice(0)) wake();
  }

  async run(paths: string[]): Promise<ScanTotals> {
    // like the backup, a path inside another given path is covered by it: count it once
    const sorted = [...new Set(paths.map((p) => path.resolve(p)))].sort();
    const roots = sorted.filter((p) => !sorted.some((q) => q !== p && (q === '/' || p.startsWith(`${q}/`))));
    await Promise.all(
      roots.map(async (p) => {
        const st = await this.limited(() => lstat(p)).catch(() => undefined);
        if (st) await this.visit(p, st.isDirectory(), st.isFile() ? st.size : 0, st.dev);
      }),
    );
    if (!this.cancelled) {
      this.totals.complete = true;
      this.options.onUpdate?.(this.totals);
    }
    return this.totals;
  }

  private async visit(p: string, isDir: boolean, size: number, rootDev: number): Promise<void> {
    if (this.cancelled) return;
    if (!isDir) {
      this.totals.files++;
      this.totals.bytes += size;
      return;
    }
    this.totals.dirs++;
    const entries = await this.limited(() => readdir(p, { withFileTypes: true })).catch(() => []);
    await Promise.all(
      entries.map(async (e) => {
        if (this.cancelled) return;
        const full = path.join(p, e.name);
        if (e.isDirectory()) {
          if (this.options.oneFileSystem) {
            const st = await this.limited(() => lstat(full)).catch(() => undefined);
            if (!st || st.dev !== rootDev) return;
          }
          await this.visit(full, true, 0, rootDev);
        } else if (e.isFile()) {
          const st = await this.limited(() => lstat(full)).catch(() => undefined);
          await this.visit(full, false, st?.size ?? 0, rootDev);
        }
        // symlinks, FIFOs and devices have no content to read: not counted
      }),
    );
    this.options.onUpdate?.(this.totals);
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    while (this.active >= this.concurrency && !this.cancelled) await new Promise<void>((r) => this.waiting.push(r));
    if (this.cancelled) throw new Error('scan cancelled');
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Start scanning in the background; `cancel()` stops it early. */
export function startSourceScan(paths: string[], options: SourceScanOptions = {}): { scan: SourceScan; done: Promise<ScanTotals> } {
  const scan = new SourceScan(options);
  const done = scan.run(paths).catch(() => scan.totals);
  return { scan, done };
}
