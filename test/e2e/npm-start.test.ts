import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// README's main command (`npm start`) must stay true: this runs the same script, on the
// embedded default, in a scratch directory, and has it stop the control plane after its checks.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm start (scripts/demo.ts)', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(path.join(tmpdir(), 'arca-demo-')); });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('backs up, restores byte-identically, then serves the control plane on PGlite and answers as the owner', async () => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ARCA_DEMO_DIR: dir, ARCA_DEMO_EXIT: '1', ARCA_CP_PORT: '0', DATABASE_URL: 'postgres://must-be-ignored.invalid/db' };
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts/demo.ts')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, out).toBe(0);
    expect(out).toMatch(/Restored \d+ entries byte-identical to the source\./);
    expect(out).toMatch(/The control plane is up: http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toContain('Control plane stopped (exit 0).');
    // the owner's token is kept in a private file and never printed
    expect(out).not.toMatch(/arca_pat_/);
    expect((await stat(path.join(dir, 'api-token'))).mode & 0o777).toBe(0o600);
  }, 120_000);
});
