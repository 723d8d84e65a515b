/**
 * `npm start`: the main job on the embedded default — nothing to install, no server to run first.
 *
 * 1. the data plane: a passphrase store under .arca-demo/, two backups (the second incremental),
 *    diff, restore, `check --read-data`, and a byte-for-byte comparison with the source;
 * 2. the control plane on its embedded database (PGlite): an organization with its owner's first
 *    API token, the GraphQL API checked as that owner, and where to sign in.
 *
 * The control plane then keeps running until Ctrl-C. ARCA_DEMO_EXIT=1 stops it after the checks
 * (what the test of this script does); ARCA_DEMO_DIR chooses another working directory.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlaneDemo } from './demo/control-plane-demo.ts';
import type { DemoContext } from './demo/demo-context.ts';
import { runEngineDemo } from './demo/engine-demo.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = path.resolve(process.env.ARCA_DEMO_DIR ?? path.join(root, '.arca-demo'));
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true, mode: 0o700 });

const ctx: DemoContext = {
  root,
  dir,
  arcaBin: path.join(root, 'apps/agent/bin/arca.mjs'),
  say: (line) => console.log(line),
  show: (file) => (file.startsWith(root) ? path.relative(root, file) : file),
  fail: (message) => {
    console.error(`\ndemo failed: ${message}`);
    process.exit(1);
  },
};

console.log('== 1. The data plane: back up, change, back up again, restore, verify ==');
runEngineDemo(ctx);

console.log('\n== 2. The control plane, on its embedded database ==');
const cp = await startControlPlaneDemo(ctx);
const rel = ctx.show;
console.log(`
The control plane is up: ${cp.url}
  GraphQL API     ${cp.url}/graphql   (signed in as the Demo organization's owner)
  health          ${cp.url}/healthz  ${cp.url}/readyz  ${cp.url}/metrics
  API token       ${rel(cp.tokenFile)}  (the owner's; shown nowhere else)
  logs            ${rel(cp.logFile)}

Try it:
  curl -s ${cp.url}/graphql -H "authorization: Bearer $(cat ${rel(cp.tokenFile)})" \\
    -H 'content-type: application/json' -d '{"query":"{ organization { name } auditEvents(first: 5) { edges { node { action actor time } } } }"}'
Browser sign-in (OpenID Connect) needs an identity provider: set ARCA_CP_OIDC_* (docs/control-plane.md).`);

if (process.env.ARCA_DEMO_EXIT === '1') {
  const code = await cp.stop();
  console.log(`\nControl plane stopped (exit ${code}).`);
  process.exit(code === 0 ? 0 : 1);
}
console.log('\nPress Ctrl-C to stop.');
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping the control plane...');
  void cp.stop().then((code) => process.exit(code === 0 ? 0 : 1));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const code = await cp.exited;
if (!stopping) {
  console.error(`the control plane exited unexpectedly (${code}); see ${rel(cp.logFile)}`);
  process.exit(1);
}
