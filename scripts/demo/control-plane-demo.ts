/**
 * Stage 2 of `npm start`: the control plane on the embedded default — PGlite in a data directory,
 * no server to install. Bootstraps an organization with its owner's first API token, serves the
 * GraphQL API, checks that it answers as that owner, and prints where to sign in.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DemoContext } from './demo-context.ts';

export interface RunningControlPlane {
  url: string;
  /** the demo owner's API token (also in `<demo dir>/api-token`, mode 0600) */
  token: string;
  tokenFile: string;
  logFile: string;
  /** SIGTERM, then waits for the graceful shutdown; resolves with the exit code */
  stop(): Promise<number | null>;
  /** resolves when the process exits by itself */
  exited: Promise<number | null>;
}

export async function startControlPlaneDemo(ctx: DemoContext): Promise<RunningControlPlane> {
  const bin = path.join(ctx.root, 'apps/control-plane/bin/arca-control-plane.ts');
  const dataDir = path.join(ctx.dir, 'control-plane');
  const logFile = path.join(ctx.dir, 'control-plane.log');
  const portWanted = process.env.ARCA_CP_PORT ?? '8080';
  const env: NodeJS.ProcessEnv = { ...process.env, ARCA_CP_DATA_DIR: dataDir, ARCA_CP_PORT: portWanted, ARCA_CP_LOG_LEVEL: process.env.ARCA_CP_LOG_LEVEL ?? 'info' };
  // the embedded default, whatever the shell has: the demo never touches a real database
  delete env.DATABASE_URL;
  delete env.DATABASE_MIGRATION_URL;

  ctx.say('\n$ arca-control-plane migrate');
  const migrate = spawnSync(process.execPath, [bin, 'migrate'], { env, encoding: 'utf8' });
  if (migrate.status !== 0) ctx.fail(`the control plane's migrate exited with ${migrate.status}:\n${migrate.stderr}`);
  ctx.say(migrate.stdout.trimEnd());

  ctx.say('\n$ arca-control-plane bootstrap --org Demo --email owner@demo.arca.local --api-token');
  const boot = spawnSync(process.execPath, [bin, 'bootstrap', '--org', 'Demo', '--email', 'owner@demo.arca.local', '--api-token'], { env, encoding: 'utf8' });
  if (boot.status !== 0) ctx.fail(`the control plane's bootstrap exited with ${boot.status}:\n${boot.stderr}`);
  const token = /^(arca_pat_\S+)$/m.exec(boot.stdout)?.[1];
  if (token == null) ctx.fail('the control plane\'s bootstrap printed no API token');
  const tokenFile = path.join(ctx.dir, 'api-token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  ctx.say(boot.stdout.replace(token, `(written to ${ctx.show(tokenFile)})`).trimEnd());

  ctx.say('\n$ arca-control-plane serve');
  let server = await serve(bin, env, logFile);
  if (server.url == null && server.addressInUse && process.env.ARCA_CP_PORT == null) {
    ctx.say(`port ${portWanted} is in use: taking a free port instead (set ARCA_CP_PORT to choose one)`);
    server = await serve(bin, { ...env, ARCA_CP_PORT: '0' }, logFile);
  }
  if (server.url == null) ctx.fail(`the control plane did not start (see ${logFile}):\n${server.output.slice(-2000)}`);
  const url = server.url;

  const answer = await graphql(url, token, '{ organization { name } viewer { roleName } verifyAuditChain { valid } }');
  const data = answer.data as { organization?: { name: string }; viewer?: { roleName: string }; verifyAuditChain?: { valid: boolean } } | undefined;
  if (data?.organization?.name !== 'Demo' || data.viewer?.roleName !== 'owner' || data.verifyAuditChain?.valid !== true) {
    await stopProcess(server.child);
    ctx.fail(`the control plane answered unexpectedly: ${JSON.stringify(answer)}`);
  }
  return {
    url,
    token,
    tokenFile,
    logFile,
    exited: server.exited,
    stop: () => stopProcess(server.child),
  };
}

interface Served {
  child: ChildProcess;
  url: string | null;
  addressInUse: boolean;
  output: string;
  exited: Promise<number | null>;
}

/** Starts `serve --migrate`, logs to logFile, and resolves once it listens or has exited. */
function serve(bin: string, env: NodeJS.ProcessEnv, logFile: string): Promise<Served> {
  const child = spawn(process.execPath, [bin, 'serve', '--migrate'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile, { flags: 'a', mode: 0o600 });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { log.end(); resolve(code); }));
  let output = '';
  return new Promise<Served>((resolve) => {
    const onData = (chunk: Buffer): void => {
      log.write(chunk);
      if (output.length < 64 * 1024) output += chunk.toString();
      const match = /"msg":"control plane listening"[^\n]*"url":"(http:\/\/[^"]+)"/.exec(output) ?? /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"control plane listening"/.exec(output);
      if (match != null) {
        child.stdout?.off('data', onData);
        child.stdout?.on('data', (more: Buffer) => log.write(more));
        resolve({ child, url: match[1]!, addressInUse: false, output, exited });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (output.length < 64 * 1024) output += chunk.toString();
    });
    void exited.then(() => resolve({ child, url: null, addressInUse: /EADDRINUSE/.test(output), output, exited }));
  });
}

async function graphql(url: string, token: string, query: string): Promise<{ data?: unknown; errors?: unknown }> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as { data?: unknown; errors?: unknown };
}

function stopProcess(child: ChildProcess): Promise<number | null> {
  if (child.exitCode != null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}
