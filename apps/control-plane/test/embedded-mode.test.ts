import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Smoke test of the shipped entry point in embedded mode: no DATABASE_URL, PGlite in a data
// directory, the decorator loader, bootstrap, serve --migrate, GraphQL, graceful SIGTERM.
const BIN = fileURLToPath(new URL('../bin/arca-control-plane.ts', import.meta.url));

describe('embedded mode (PGlite) through the CLI', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'arca-cp-embedded-'));
    env = { PATH: process.env.PATH, HOME: process.env.HOME, ARCA_CP_DATA_DIR: dataDir, ARCA_CP_PORT: '0', ARCA_CP_LOG_LEVEL: 'info' };
  });
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it('migrates, bootstraps, serves GraphQL with row-level security, and stops on SIGTERM', async () => {
    const migrate = spawnSync(process.execPath, [BIN, 'migrate'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(migrate.stderr).not.toMatch(/Error/);
    expect(migrate.status).toBe(0);
    const boot = spawnSync(process.execPath, [BIN, 'bootstrap', '--org', 'Embedded', '--email', 'ada@embedded.test'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(boot.status, boot.stderr).toBe(0);
    const token = /^(arca_pat_\S+)$/m.exec(boot.stdout)?.[1];
    expect(token).toBeDefined();

    const server = spawn(process.execPath, [BIN, 'serve', '--migrate'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    server.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
        server.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /"url":"(http:\/\/[^"]+)"/.exec(output);
          if (match != null) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
      });
      expect(await (await fetch(`${url}/readyz`)).json()).toMatchObject({ status: 'ready' });
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: '{ viewer { roleName } organization { name } verifyAuditChain { valid } }' }),
      });
      expect(await response.json()).toEqual({ data: { viewer: { roleName: 'owner' }, organization: { name: 'Embedded' }, verifyAuditChain: { valid: true } } });
    } finally {
      server.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(output).toContain('"msg":"stopped"');
  });
});
