import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../src/index.ts';
import { CliApp } from '../src/cli/command.ts';
import { formatBytes, formatDuration, formatEta, formatMode, formatRate, renderTable } from '../src/cli/format.ts';
import { normalizeIo } from '../src/cli/io.ts';
import { keepCount, parseDuration, parsePercent, parseSubset } from '../src/cli/option-parsers.ts';
import { ProgressBar } from '../src/cli/progress-bar.ts';
import { parseSnapshotPath } from '../src/cli/snapshot-ref.ts';
import { SourceScan } from '../src/cli/source-scan.ts';
import { FAST_KDF, tempDir } from './helpers.ts';

class Capture extends Writable {
  chunks: Buffer[] = [];
  columns: number | undefined;
  constructor(columns?: number) {
    super();
    this.columns = columns;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function io(env: Record<string, string | undefined> = {}, stderrTty = false) {
  const stdout = new Capture();
  const stderr = new Capture(100);
  return { stdout, stderr, stdin: new PassThrough(), env, isTTY: { stdin: false, stdout: false, stderr: stderrTty } };
}

describe('formatting', () => {
  it('formats sizes, rates, durations, ETAs and modes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(10 * 1024 ** 2)).toBe('10.0 MiB');
    expect(formatBytes(300 * 1024 ** 3)).toBe('300 GiB');
    expect(formatRate(12_345_678)).toBe('12.3 MB/s');
    expect(formatDuration(850)).toBe('850ms');
    expect(formatDuration(12_300)).toBe('12.3s');
    expect(formatDuration(125_000)).toBe('2m05s');
    expect(formatDuration(3_725_000)).toBe('1h02m05s');
    expect(formatEta(7)).toBe('0:07');
    expect(formatEta(3723)).toBe('1:02:03');
    expect(formatEta(Infinity)).toBe('--:--');
    expect(formatMode('dir', 0o755)).toBe('drwxr-xr-x');
    expect(formatMode('file', 0o4755)).toBe('-rwsr-xr-x');
    expect(formatMode('dir', 0o1777)).toBe('drwxrwxrwt');
    expect(formatMode('file', 0o2640)).toBe('-rw-r-S---');
  });

  it('aligns tables, with multi-line cells', () => {
    expect(renderTable(['A', 'Bee'], [['1', 'x'], ['22', 'y\nz']])).toBe(['A   Bee', '-------', '1   x', '22  y', '    z'].join('\n'));
  });
});

describe('option parsers', () => {
  it('parses durations, subsets, percentages and keep counts', () => {
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('1y6m')).toBe((365 + 180) * 86_400_000);
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(() => parseDuration('soon')).toThrow(/duration/);
    expect(parseSubset('2/5')).toEqual({ n: 2, of: 5 });
    expect(() => parseSubset('0/5')).toThrow();
    expect(() => parseSubset('6/5')).toThrow();
    expect(parsePercent('5%')).toBe(5);
    expect(parsePercent('12.5')).toBe(12.5);
    expect(() => parsePercent('101')).toThrow();
    expect(keepCount('3')).toBe(3);
    expect(keepCount('unlimited')).toBe(-1);
    expect(() => keepCount('0')).toThrow();
  });

  it('parses snapshot references with paths', () => {
    expect(parseSnapshotPath('latest')).toEqual({ ref: 'latest', path: undefined });
    expect(parseSnapshotPath('1a2b:/etc/hosts')).toEqual({ ref: '1a2b', path: '/etc/hosts' });
    expect(parseSnapshotPath('1a2b:etc//x/')).toEqual({ ref: '1a2b', path: '/etc/x' });
    expect(parseSnapshotPath('latest:/')).toEqual({ ref: 'latest', path: undefined });
    expect(parseSnapshotPath('latest:/a:b')).toEqual({ ref: 'latest', path: '/a:b' });
    expect(() => parseSnapshotPath(':/etc')).toThrow(/snapshot/);
  });
});

describe('progress bar', () => {
  it('renders bar, percentage, sizes, rate and ETA, and throttles redraws', () => {
    let now = 0;
    const out = new Capture(80);
    const bar = new ProgressBar({ stream: out, label: 'backup', unit: 'bytes', now: () => now, tick: false });
    bar.update({ done: 0, total: 100 * 1e6 });
    now = 1000;
    bar.update({ done: 25 * 1e6, total: 100 * 1e6, detail: '3/10 files' });
    const line = bar.render(80);
    expect(line).toMatch(/^backup \[█+░+\] {2}25\.0%/);
    expect(line).toContain('23.8 MiB/95.4 MiB');
    expect(line).toContain('25.0 MB/s');
    expect(line).toContain('ETA 0:03');
    expect(line).toContain('3/10 files');
    expect(line.length).toBeLessThanOrEqual(79);
    const draws = out.text.split('\r\x1b[2K').length - 1;
    now = 1010;
    bar.update({ done: 26 * 1e6, total: 100 * 1e6 });
    expect(out.text.split('\r\x1b[2K').length - 1).toBe(draws); // within 100 ms: not redrawn
    now = 1200;
    bar.update({ done: 27 * 1e6, total: 100 * 1e6 });
    expect(out.text.split('\r\x1b[2K').length - 1).toBe(draws + 1);
    bar.stop();
    expect(out.text.endsWith('\r\x1b[2K')).toBe(true);
    expect(bar.render(20).length).toBeLessThanOrEqual(19);
  });

  it('shows counts without a total while it is unknown', () => {
    const bar = new ProgressBar({ stream: new Capture(), label: 'check', unit: 'count', now: () => 0, tick: false });
    bar.update({ done: 5 });
    expect(bar.render(80)).toBe('check  5');
  });
});

describe('runCli in-process', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('the source scan counts regular files and their bytes', async () => {
    const root = path.join(tmp.dir, 'scan');
    await mkdir(path.join(root, 'a', 'b'), { recursive: true });
    await writeFile(path.join(root, 'one'), Buffer.alloc(1000));
    await writeFile(path.join(root, 'a', 'two'), Buffer.alloc(2000));
    await writeFile(path.join(root, 'a', 'b', 'three'), Buffer.alloc(3000));
    await symlink('one', path.join(root, 'link'));
    const updates: number[] = [];
    const totals = await new SourceScan({ concurrency: 2, onUpdate: (t) => updates.push(t.files) }).run([root, path.join(root, 'one')]);
    expect(totals).toEqual({ files: 3, dirs: 3, bytes: 6000, complete: true }); // root/one is inside root: counted once
    expect(updates.length).toBeGreaterThan(0);
    const cancelled = new SourceScan();
    cancelled.cancel();
    expect((await cancelled.run([root])).complete).toBe(false);
  });

  it('every command has --help with an Examples section', async () => {
    const program = buildProgram(new CliApp(normalizeIo(io())));
    const names: string[][] = [];
    for (const c of program.commands) {
      if (c.commands.length === 0) names.push([c.name()]);
      for (const sub of c.commands) names.push([c.name(), sub.name()]);
    }
    expect(names.map((n) => n.join(' '))).toEqual(
      expect.arrayContaining(['init', 'backup', 'snapshots', 'ls', 'cat', 'restore', 'diff', 'find', 'check', 'forget', 'prune', 'key add', 'key list', 'key remove', 'unlock', 'version']),
    );
    for (const n of [[], ['key'], ...names]) {
      const x = io();
      const code = await runCli(['node', 'arca', ...n, '--help'], x);
      expect(code, n.join(' ')).toBe(0);
      expect(x.stdout.text, n.join(' ')).toContain('Examples:');
    }
  });

  it('draws a progress line on a terminal and clears it at the end; none without one', async () => {
    const src = path.join(tmp.dir, 'src');
    await mkdir(src);
    for (let i = 0; i < 20; i++) await writeFile(path.join(src, `f${i}`), Buffer.alloc(50_000, i));
    const env = { ARCA_STORE: path.join(tmp.dir, 'store'), ARCA_PASSPHRASE: 'in-process' };
    expect(await runCli(['node', 'arca', 'init', ...FAST_KDF, '-q'], io(env))).toBe(0);

    const tty = io(env, true);
    expect(await runCli(['node', 'arca', 'backup', src], tty)).toBe(0);
    expect(tty.stderr.text).toContain('\r\x1b[2Kbackup');
    expect(tty.stderr.text.endsWith('\r\x1b[2K')).toBe(true);
    expect(tty.stdout.text).toMatch(/snapshot [0-9a-f]{64} saved/);

    const plain = io(env, false);
    expect(await runCli(['node', 'arca', 'backup', src], plain)).toBe(0);
    expect(plain.stderr.text).toBe('');
    const noProgress = io(env, true);
    expect(await runCli(['node', 'arca', 'backup', src, '--no-progress'], noProgress)).toBe(0);
    expect(noProgress.stderr.text).toBe('');

    const restored = io(env, true);
    expect(await runCli(['node', 'arca', 'restore', 'latest', '--target', path.join(tmp.dir, 'r')], restored)).toBe(0);
    expect(restored.stderr.text).toContain('restore');
    expect(restored.stderr.text.endsWith('\r\x1b[2K')).toBe(true);
  });

  it('--quiet backup prints only the snapshot ID; --json errors go to stdout too', async () => {
    const env = { ARCA_STORE: path.join(tmp.dir, 'store'), ARCA_PASSPHRASE: 'in-process' };
    const q = io(env);
    expect(await runCli(['node', 'arca', '-q', 'backup', path.join(tmp.dir, 'src')], q)).toBe(0);
    expect(q.stdout.text).toMatch(/^[0-9a-f]{64}\n$/);

    const e = io(env);
    expect(await runCli(['node', 'arca', 'ls', 'ffffffff', '--json'], e)).toBe(1);
    expect(JSON.parse(e.stdout.text)).toEqual({ error: { code: 'SNAPSHOT_NOT_FOUND', message: 'no snapshot ffffffff', hint: 'list snapshots with `arca snapshots`' } });
    expect(e.stderr.text).toBe('arca: error: no snapshot ffffffff\nhint: list snapshots with `arca snapshots`\n');
  });
});
