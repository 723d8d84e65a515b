/** Human-readable formatting of sizes, durations, times and file modes. */

const IEC_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; exact bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '?';
  const sign = bytes < 0 ? '-' : '';
  let v = Math.abs(bytes);
  let unit = 0;
  while (v >= 1024 && unit < IEC_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  if (unit === 0) return `${sign}${v} B`;
  return `${sign}${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${IEC_UNITS[unit]}`;
}

/** Transfer rate in decimal megabytes per second: "12.3 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) return '-- MB/s';
  const mb = bytesPerSecond / 1e6;
  return `${mb >= 100 ? mb.toFixed(0) : mb.toFixed(1)} MB/s`;
}

/** 850 -> "850ms", 12_300 -> "12.3s", 125_000 -> "2m05s", 3_725_000 -> "1h02m05s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}h${mm}m${ss}s` : `${m}m${ss}s`;
}

/** Remaining time as a clock: "0:07", "12:30", "1:02:03". */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const total = Math.ceil(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Local time, second precision: "2024-05-01 14:03:09". */
export function formatTime(time: Date | string | number): string {
  const d = time instanceof Date ? time : new Date(time);
  if (Number.isNaN(d.getTime())) return '?';
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** A tree node's mtime (decimal nanoseconds) as a Date. */
export function dateFromNs(ns: string | undefined): Date {
  if (!ns) return new Date(0);
  try {
    return new Date(Number(BigInt(ns) / 1_000_000n));
  } catch {
    return new Date(0);
  }
}

const TYPE_CHARS: Record<string, string> = {
  file: '-',
  dir: 'd',
  symlink: 'l',
  fifo: 'p',
  socket: 's',
  chardev: 'c',
  blockdev: 'b',
};

/** ls-style permission string: ("dir", 0o755) -> "drwxr-xr-x", with setuid/setgid/sticky. */
export function formatMode(type: string, mode: number): string {
  const rwx = (bits: number, special: boolean, specialChar: string) => {
    const x = (bits & 1) !== 0;
    let exec = x ? 'x' : '-';
    if (special) exec = x ? specialChar : specialChar.toUpperCase();
    return `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${exec}`;
  };
  return (
    (TYPE_CHARS[type] ?? '?') +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

/** First 8 hex digits of an ID: what `arca snapshots` shows and what users type. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Render rows as an aligned text table. Cells may contain newlines (continuation lines are placed
 * under the same column). The last column is not padded.
 */
export function renderTable(headers: string[] | undefined, rows: string[][], gap = '  '): string {
  const expanded: string[][] = [];
  const all = headers ? [headers, ...rows] : rows;
  for (const row of all) {
    const cells = row.map((c) => c.split('\n'));
    const height = Math.max(1, ...cells.map((c) => c.length));
    for (let i = 0; i < height; i++) expanded.push(cells.map((c) => c[i] ?? ''));
  }
  const cols = Math.max(0, ...expanded.map((r) => r.length));
  const widths = Array.from({ length: cols }, (_, i) => Math.max(0, ...expanded.map((r) => (r[i] ?? '').length)));
  const lines = expanded.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join(gap)
      .trimEnd(),
  );
  if (headers) {
    const headerHeight = Math.max(1, ...headers.map((h) => h.split('\n').length));
    lines.splice(headerHeight, 0, '-'.repeat(Math.max(...lines.map((l) => l.length))));
  }
  return lines.join('\n');
}
