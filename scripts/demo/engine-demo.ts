/**
 * Stage 1 of `npm start`: the data plane on its own. Creates a passphrase store, backs up docs/
 * and libs/ of this repository, changes a file, backs up again (incrementally), restores the
 * latest snapshot, checks every byte of the store and compares the restored tree with the source.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { DemoContext } from './demo-context.ts';

export function runEngineDemo(ctx: DemoContext): void {
  const store = path.join(ctx.dir, 'store');
  const source = path.join(ctx.dir, 'source');
  const target = path.join(ctx.dir, 'restored');
  // A throw-away store needs a throw-away passphrase: generated here, kept next to the demo store.
  const passFile = path.join(ctx.dir, 'passphrase');
  writeFileSync(passFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, ARCA_STORE: store, ARCA_PASSPHRASE_FILE: passFile };
  delete env.ARCA_PASSPHRASE;

  const arca = (...args: string[]): string => {
    ctx.say(`\n$ arca ${args.join(' ')}`);
    const r = spawnSync(process.execPath, [ctx.arcaBin, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    ctx.say(r.stdout.trimEnd());
    if (r.status !== 0) ctx.fail(`arca ${args[0]} exited with ${r.status}`);
    return r.stdout;
  };

  mkdirSync(source, { recursive: true });
  for (const dir of ['docs', 'libs']) {
    const from = path.join(ctx.root, dir);
    if (existsSync(from)) cpSync(from, path.join(source, dir), { recursive: true, filter: (p) => !p.includes('node_modules') });
  }

  arca('init');
  arca('backup', source, '--tag', 'demo');
  writeFileSync(path.join(source, 'docs', 'CHANGED-BY-DEMO.txt'), `changed at ${new Date().toISOString()}\n`);
  arca('backup', source, '--tag', 'demo');
  arca('snapshots');
  arca('diff', ...JSON.parse(arca('snapshots', '--json', '--quiet')).map((s: { id: string }) => s.id.slice(0, 8)));
  arca('restore', `latest:${source}`, '--target', target);
  arca('check', '--read-data');

  const restored = digestTree(target);
  if (JSON.stringify([...digestTree(source)]) !== JSON.stringify([...restored])) ctx.fail('the restored tree differs from the source');
  ctx.say(`\nRestored ${restored.size} entries byte-identical to the source.`);
  ctx.say(`Store: ${store}  (passphrase in ${passFile})`);
  ctx.say(`Try:   ARCA_STORE=${ctx.show(store)} ARCA_PASSPHRASE_FILE=${ctx.show(passFile)} npm run arca -- ls latest`);
}

/** path -> mode and content (files), or the entry's kind: what "byte-identical" compares */
function digestTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of readdirSync(root, { recursive: true }).map(String).sort()) {
    const full = path.join(root, rel);
    const st = lstatSync(full);
    out.set(rel, st.isFile() ? `${st.mode & 0o777}:${readFileSync(full).toString('base64')}` : st.isDirectory() ? 'dir' : 'other');
  }
  return out;
}
