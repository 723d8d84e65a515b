/**
 * `npm start`: the main job on the embedded default — no server needed.
 * Creates a store under .arca-demo/, backs up docs/ and libs/ of this repository, changes a file,
 * backs up again (incrementally), restores the latest snapshot and verifies it byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(ROOT, '.arca-demo');
const STORE = path.join(DEMO, 'store');
const SOURCE = path.join(DEMO, 'source');
const TARGET = path.join(DEMO, 'restored');
const ARCA = path.join(ROOT, 'apps/agent/bin/arca.mjs');

// A throw-away store needs a throw-away passphrase: generated here, kept next to the demo store.
const passFile = path.join(DEMO, 'passphrase');
rmSync(DEMO, { recursive: true, force: true });
mkdirSync(DEMO, { recursive: true });
writeFileSync(passFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
const env: NodeJS.ProcessEnv = { ...process.env, ARCA_STORE: STORE, ARCA_PASSPHRASE_FILE: passFile };
delete env.ARCA_PASSPHRASE;

function arca(...args: string[]): string {
  console.log(`\n$ arca ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [ARCA, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    console.error(`\ndemo failed: arca ${args[0]} exited with ${r.status}`);
    process.exit(1);
  }
  return r.stdout;
}

function digestTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of readdirSync(root, { recursive: true }).map(String).sort()) {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    out.set(rel, st.isFile() ? `${st.mode & 0o777}:${readFileSync(full).toString('base64')}` : st.isDirectory() ? 'dir' : 'other');
  }
  return out;
}

mkdirSync(SOURCE, { recursive: true });
for (const dir of ['docs', 'libs']) {
  if (existsSync(path.join(ROOT, dir))) cpSync(path.join(ROOT, dir), path.join(SOURCE, dir), { recursive: true, filter: (p) => !p.includes('node_modules') });
}

arca('init');
arca('backup', SOURCE, '--tag', 'demo');
writeFileSync(path.join(SOURCE, 'docs', 'CHANGED-BY-DEMO.txt'), `changed at ${new Date().toISOString()}\n`);
arca('backup', SOURCE, '--tag', 'demo');
arca('snapshots');
arca('diff', ...JSON.parse(arca('snapshots', '--json', '--quiet')).map((s: { id: string }) => s.id.slice(0, 8)));
arca('restore', `latest:${SOURCE}`, '--target', TARGET);
arca('check', '--read-data');

const same = JSON.stringify([...digestTree(SOURCE)]) === JSON.stringify([...digestTree(TARGET)]);
if (!same) {
  console.error('\ndemo failed: the restored tree differs from the source');
  process.exit(1);
}
console.log(`\nRestored ${digestTree(TARGET).size} entries byte-identical to the source.`);
console.log(`Store: ${STORE}  (passphrase in ${passFile})`);
console.log('Try:   ARCA_STORE=.arca-demo/store ARCA_PASSPHRASE_FILE=.arca-demo/passphrase npm run arca -- ls latest');
