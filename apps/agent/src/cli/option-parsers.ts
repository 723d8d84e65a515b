import { InvalidArgumentError } from 'commander';

/** Commander parser for repeatable options: `--tag a --tag b` -> ['a', 'b']. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Commander parser factory for whole numbers with a minimum. */
export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('not a whole number');
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`must be at least ${min}`);
    if (n > max) throw new InvalidArgumentError(`must be at most ${max}`);
    return n;
  };
}

/** Argon2id limits enforced by libs/crypto, checked here too so a bad value is a usage error (exit 2). */
export const KDF_LIMITS = { memoryKiB: [8192, 4 * 1024 * 1024], iterations: [1, 64], parallelism: [1, 16] } as const;

const DURATION_UNITS: Record<string, number> = {
  y: 365 * 24 * 3600_000,
  m: 30 * 24 * 3600_000,
  w: 7 * 24 * 3600_000,
  d: 24 * 3600_000,
  h: 3600_000,
};

/** "1y6m", "30d", "2w", "12h" -> milliseconds (y = 365 days, m = 30 days). */
export function parseDuration(value: string): number {
  const text = value.trim().toLowerCase();
  if (!/^(\d+[ymwdh])+$/.test(text)) throw new InvalidArgumentError('expected a duration like 30d, 2w, 6m, 1y6m or 12h (y=year, m=month, w=week, d=day, h=hour)');
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([ymwdh])/g)) ms += Number(n) * DURATION_UNITS[unit!]!;
  if (ms <= 0) throw new InvalidArgumentError('the duration must be longer than zero');
  return ms;
}

/** "2/5" -> { n: 2, of: 5 }: the second of five parts. */
export function parseSubset(value: string): { n: number; of: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected n/m, e.g. 1/5 for the first fifth of the data');
  const n = Number(m[1]);
  const of = Number(m[2]);
  if (of < 1 || n < 1 || n > of) throw new InvalidArgumentError('n must be between 1 and m');
  return { n, of };
}

/** "10" or "10%" -> 10 (0..100). */
export function parsePercent(value: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a percentage, e.g. 5 or 5%');
  const n = Number(m[1]);
  if (n < 0 || n > 100) throw new InvalidArgumentError('must be between 0 and 100');
  return n;
}

/** Retention counts: a whole number >= 1, or -1 / "unlimited" for no limit. */
export function keepCount(value: string): number {
  const v = value.trim().toLowerCase();
  if (v === '-1' || v === 'unlimited') return -1;
  return integer(1)(v);
}
