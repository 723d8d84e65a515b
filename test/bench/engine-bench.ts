/**
 * `npm run bench:engine`: arca vs restic on the shared dataset, in the same run.
 *
 * Both tools back up the same stable path: v1 is moved to it for the first backup, then v2 for the
 * incremental one, so each finds its parent snapshot and its unchanged-file detection (size, mtime,
 * ctime, inode) applies, as on a live machine. Then both restore the v2 snapshot. Reports wall
 * time, throughput, store size and peak RSS, and the arca/restic ratios.
 *
 * Env: BENCH_DIR (default /tmp/arca-bench), BENCH_RUNS (default 1; medians are reported),
 * BENCH_RESTORE_DIR (where restores go; default BENCH_DIR/work). A tmpfs such as /dev/shm measures
 * the tools rather than the disk: on a disk whose file creation has slowed (ext4 with online
 * discard after heavy churn, seen at ~1 ms per created file) both tools' restores mostly wait on it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BENCH_DIR = process.env.BENCH_DIR ?? '/tmp/arca-bench';
const DATA = path.join(BENCH_DIR, 'data');
const SRC = path.join(BENCH_DIR, 'src');
const RUNS = Number(process.env.BENCH_RUNS ?? 1);
const PASS = 'bench-passphrase-not-secret';
const ARCA = [process.execPath, path.join(ROOT, 'apps/agent/bin/arca.mjs')];

interface Sample {
  seconds: number;
  peakRssMiB: number;
}

/** Run a command, sampling its peak RSS (VmHWM) from /proc while it runs. */
function run(cmd: string[], env: NodeJS.ProcessEnv): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let peakKiB = 0;
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // exited between samples
      }
    };
    const timer = setInterval(sample, 25);
    child.on('exit', (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) reject(new Error(`${cmd.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ seconds, peakRssMiB: peakKiB / 1024 });
    });
  });
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) total += statSync(path.join(e.parentPath, e.name)).size;
  return total;
}

function ensureDataset(): number {
  if (!existsSync(path.join(DATA, 'CHANGES.json'))) {
    console.log(`generating the dataset in ${DATA} (about 20 s)...`);
    const gen = path.join(ROOT, '../shared/bench/gen-dataset.mjs');
    const r = spawnSync(process.execPath, [gen, DATA], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('dataset generation failed');
  }
  return dirBytes(path.join(DATA, 'v1'));
}

/** Put `version` at the stable source path for the duration of fn. */
async function withSource<T>(version: 'v1' | 'v2', fn: () => Promise<T>): Promise<T> {
  renameSync(path.join(DATA, version), SRC);
  try {
    return await fn();
  } finally {
    renameSync(SRC, path.join(DATA, version));
  }
}

interface ToolResult {
  first: Sample;
  incremental: Sample;
  restore: Sample;
  storeBytes: number;
}

interface Tool {
  name: string;
  init(store: string): Promise<unknown>;
  backup(store: string): Promise<Sample>;
  restore(store: string, target: string): Promise<Sample>;
}

const arca: Tool = {
  name: 'arca',
  init: (store) => run([...ARCA, 'init', '--store', store, '--quiet'], { ARCA_PASSPHRASE: PASS }),
  backup: (store) => run([...ARCA, 'backup', SRC, '--store', store, '--quiet', '--no-progress'], { ARCA_PASSPHRASE: PASS }),
  restore: (store, target) => run([...ARCA, 'restore', 'latest', '--target', target, '--store', store, '--quiet', '--no-progress'], { ARCA_PASSPHRASE: PASS }),
};

const restic: Tool = {
  name: 'restic',
  init: (store) => run(['restic', 'init', '-q', '-r', store], { RESTIC_PASSWORD: PASS }),
  backup: (store) => run(['restic', 'backup', '-q', '-r', store, SRC], { RESTIC_PASSWORD: PASS }),
  restore: (store, target) => run(['restic', 'restore', 'latest', '-q', '-r', store, '--target', target], { RESTIC_PASSWORD: PASS }),
};

async function measure(tool: Tool, work: string): Promise<ToolResult> {
  const store = path.join(work, `${tool.name}-store`);
  const target = path.join(process.env.BENCH_RESTORE_DIR ?? work, `${tool.name}-restore`);
  rmSync(store, { recursive: true, force: true });
  rmSync(target, { recursive: true, force: true });
  await tool.init(store);
  const first = await withSource('v1', () => tool.backup(store));
  const incremental = await withSource('v2', () => tool.backup(store));
  const restored = await tool.restore(store, target);
  const storeBytes = dirBytes(store);
  rmSync(target, { recursive: true, force: true });
  rmSync(store, { recursive: true, force: true });
  return { first, incremental, restore: restored, storeBytes };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  if (spawnSync('restic', ['version']).status !== 0) {
    console.error('restic is not installed: apt-get install restic');
    process.exit(1);
  }
  const v1Bytes = ensureDataset();
  const v2Bytes = dirBytes(path.join(DATA, 'v2'));
  const work = path.join(BENCH_DIR, 'work');
  mkdirSync(work, { recursive: true });
  const results: Record<string, ToolResult[]> = { arca: [], restic: [] };
  for (let i = 0; i < RUNS; i++) {
    // alternate the order so drift on a shared machine does not favour one tool
    for (const tool of i % 2 === 0 ? [arca, restic] : [restic, arca]) {
      process.stdout.write(`run ${i + 1}/${RUNS}: ${tool.name}... `);
      results[tool.name]!.push(await measure(tool, work));
      console.log('done');
    }
  }
  const pick = (name: string, f: (r: ToolResult) => number) => median(results[name]!.map(f));
  const rows: [string, (r: ToolResult) => number, 'time' | 'size' | 'rss', number][] = [
    ['first backup (v1)', (r) => r.first.seconds, 'time', v1Bytes],
    ['incremental backup (v2)', (r) => r.incremental.seconds, 'time', v2Bytes],
    ['restore (v2)', (r) => r.restore.seconds, 'time', v2Bytes],
    ['store size after v2', (r) => r.storeBytes, 'size', 0],
    ['peak RSS, first backup', (r) => r.first.peakRssMiB, 'rss', 0],
    ['peak RSS, incremental', (r) => r.incremental.peakRssMiB, 'rss', 0],
    ['peak RSS, restore', (r) => r.restore.peakRssMiB, 'rss', 0],
  ];
  console.log(`\ndataset: v1 ${(v1Bytes / 1e6).toFixed(0)} MB, v2 ${(v2Bytes / 1e6).toFixed(0)} MB; ${RUNS} run(s), medians; restores into ${process.env.BENCH_RESTORE_DIR ?? work}; ratio = arca/restic for time, size and RSS (lower is better), speedup = restic/arca\n`);
  console.log('| measure | arca | restic | ratio | speedup |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [label, f, kind, bytes] of rows) {
    const a = pick('arca', f);
    const r = pick('restic', f);
    const fmt = (v: number) => (kind === 'time' ? `${v.toFixed(2)} s (${(bytes / 1e6 / v).toFixed(0)} MB/s)` : kind === 'size' ? `${(v / 1e6).toFixed(0)} MB` : `${v.toFixed(0)} MiB`);
    console.log(`| ${label} | ${fmt(a)} | ${fmt(r)} | ${(a / r).toFixed(2)} | ${kind === 'time' ? `${(r / a).toFixed(2)}x` : ''} |`);
  }
}

await main();
