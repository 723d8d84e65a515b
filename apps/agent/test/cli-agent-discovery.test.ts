/**
 * `arca agent run --discover-postgres …` through the real `arca` executable: the options and their
 * environment variables, and what reaches PUT /agent/v1/inventory. The control plane is a small
 * HTTP stand-in that answers the agent API's shapes (enroll, heartbeat, inventory, empty leases);
 * PostgreSQL and psql are real (postgres-support.ts), with scratch databases dropped after.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InventoryResource } from '@arca/contracts';
import { runArca, tempDir, type RunResult } from './helpers.ts';
import { closedPort, PG_ENV, PG_HOST, PG_PORT, PG_USER, psql } from './postgres-support.ts';

/** The agent API as far as an idle agent uses it; records inventories and counts heartbeats. */
class StubControlPlane {
  readonly inventories: InventoryResource[][] = [];
  heartbeats = 0;
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void body(req).then((text) => {
        const answer = (status: number, json: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
        if (req.url === '/agent/v1/enroll') return answer(200, { orgId: randomUUID(), agentId: randomUUID(), credential: 'arca_agt_stub', heartbeatSeconds: 1, leaseWaitSeconds: 1 });
        if (req.url === '/agent/v1/heartbeat') {
          this.heartbeats++;
          return answer(200, { serverTime: new Date().toISOString(), heartbeatSeconds: 1, cancelJobs: [] });
        }
        if (req.url === '/agent/v1/inventory' && req.method === 'PUT') {
          const { resources } = JSON.parse(text) as { resources: InventoryResource[] };
          this.inventories.push(resources);
          return answer(200, { accepted: resources.length });
        }
        if (req.url === '/agent/v1/jobs/lease') return void setTimeout(() => answer(200, { jobs: [] }), 200);
        answer(404, { error: { code: 'NOT_FOUND', message: 'not in the stub' } });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
  });
}

describe('arca agent run: inventory discovery options', () => {
  const suffix = randomBytes(6).toString('hex');
  const dbA = `arca_cli_inv_a_${suffix}`;
  const dbB = `arca_cli_inv_b_${suffix}`;
  const secret = `arca-test-pgpassword-${suffix}`;
  const cp = new StubControlPlane();
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let dataDir: string;
  const explicit: InventoryResource[] = [
    { kind: 'path', path: '/srv' },
    { kind: 'postgres', database: dbA, host: PG_HOST, port: PG_PORT }, // also discovered
    { kind: 'path', path: '/srv' },
  ];

  /** Run the daemon until `until` holds for what the stub saw, then SIGTERM it. */
  async function runAgent(args: string[], env: Record<string, string | undefined>, until: () => boolean): Promise<RunResult> {
    const deadline = Date.now() + 20_000;
    let timer: NodeJS.Timeout | undefined;
    const result = await runArca(['agent', 'run', '--data-dir', dataDir, '--grace-seconds', '1', ...args], {
      env: { PGUSER: PG_USER, PGPASSWORD: PG_ENV.PGPASSWORD, ...env },
      onSpawn: (child) => {
        timer = setInterval(() => {
          if (until() || Date.now() > deadline) {
            clearInterval(timer);
            child.kill('SIGTERM');
          }
        }, 50);
      },
    });
    clearInterval(timer);
    return result;
  }

  beforeAll(async () => {
    tmp = await tempDir('arca-agent-inv-');
    dataDir = path.join(tmp.dir, 'agent');
    for (const db of [dbB, dbA]) psql('postgres', `CREATE DATABASE ${db}`);
    await cp.start();
    const enrolled = await runArca(['agent', 'enroll', '--url', cp.url, '--token', 'arca_enr_stub', '--data-dir', dataDir]);
    expect(enrolled.stderr).toBe('');
    expect(enrolled.code).toBe(0);
    await writeFile(path.join(dataDir, 'inventory.json'), JSON.stringify({ resources: explicit }));
  });

  afterAll(async () => {
    for (const db of [dbA, dbB]) {
      try {
        psql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      } catch {
        // best effort
      }
    }
    await cp.stop();
    await tmp?.cleanup();
  });

  it('rejects a --discover-postgres value that is not a server (usage error, exit 2) before anything else', async () => {
    const bad = await runArca(['agent', 'run', '--data-dir', dataDir, '--discover-postgres', 'host=evil dbname=x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--discover-postgres "host=evil dbname=x": the host must be a host name, an IP address or an absolute Unix-socket directory/);
    const port = await runArca(['agent', 'run', '--data-dir', dataDir, '--discover-postgres', 'db1:70000']);
    expect(port.code).toBe(2);
    expect(port.stderr).toMatch(/the port must be a number from 1 to 65535/);
    const env = await runArca(['agent', 'run', '--data-dir', dataDir], { env: { ARCA_AGENT_DISCOVER_POSTGRES: 'local,db1:0' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/ARCA_AGENT_DISCOVER_POSTGRES: "db1:0": the port must be/);
    const help = await runArca(['agent', 'run', '--help']);
    expect(help.stdout).toMatch(/--discover-postgres \[host\[:port\]\]/);
    expect(help.stdout).toMatch(/--discover-mounts/);
  });

  it('--discover-postgres HOST:PORT (given twice): inventory.json and the databases, deduplicated and sorted', async () => {
    const sent = cp.inventories.length;
    const hasScratch = (r: InventoryResource[]) => r.some((x) => x.kind === 'postgres' && x.database === dbB);
    const target = `${PG_HOST}:${PG_PORT}`;
    const r = await runAgent(['--discover-postgres', target, '--discover-postgres', target], { PGPASSWORD: secret }, () => cp.inventories.slice(sent).some(hasScratch));
    expect(r.code).toBe(0);
    const reported = cp.inventories.slice(sent).find(hasScratch)!;
    const pg = (database: string) => ({ kind: 'postgres', database, host: PG_HOST, port: PG_PORT });
    expect(reported).toEqual(expect.arrayContaining([{ kind: 'path', path: '/srv' }, pg(dbA), pg(dbB), pg('postgres')]));
    expect(reported.filter((x) => x.kind === 'path')).toEqual([{ kind: 'path', path: '/srv' }]);
    expect(reported.filter((x) => x.kind === 'postgres' && x.database === dbA)).toHaveLength(1);
    expect(reported.some((x) => x.kind === 'postgres' && x.database.startsWith('template'))).toBe(false);
    // sorted: paths first, then databases by name
    const dbs = reported.flatMap((x) => (x.kind === 'postgres' ? [x.database] : []));
    expect(dbs).toEqual([...dbs].sort());
    expect(reported[0]).toEqual({ kind: 'path', path: '/srv' });
    // the password in the environment reaches psql only, never the log
    expect(r.stderr).not.toContain(secret);
    expect(r.stderr).toContain('"msg":"inventory discovery"');
  });

  it('ARCA_AGENT_DISCOVER_POSTGRES naming a server that is down: one warning, inventory.json still reported, heartbeats go on', async () => {
    const port = await closedPort();
    const heartbeatsBefore = cp.heartbeats;
    const r = await runAgent([], { ARCA_AGENT_DISCOVER_POSTGRES: `127.0.0.1:${port}` }, () => cp.heartbeats >= heartbeatsBefore + 3);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('"msg":"inventory discovery failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`"source":"postgres 127.0.0.1:${port}"`);
    expect(warnings[0]).toMatch(/Connection refused/);
    // the stub forgets nothing between runs: this run's PUT is inventory.json alone
    expect(cp.inventories.at(-1)).toEqual([{ kind: 'path', path: '/srv' }, { kind: 'postgres', database: dbA, host: PG_HOST, port: PG_PORT }]);
  });
});
