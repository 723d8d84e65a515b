import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TransactionSql } from 'postgres';
import type { ScratchDatabase } from '@arca/db/testing';

/**
 * The control plane as the benchmarks run it (bench:api, bench:fleet): a child process on the
 * scratch database with default settings and NODE_ENV=production, tuned only through
 * BENCH_CP_NODE_ARGS (extra node flags, e.g. "--cpu-prof --cpu-prof-dir=/tmp/cp-prof"),
 * BENCH_CP_ENV ("KEY=value,KEY=value") and BENCH_CP_LOG (a file that keeps its log).
 */
const CONTROL_PLANE = path.join(fileURLToPath(new URL('../../..', import.meta.url)), 'apps/control-plane/bin/arca-control-plane.ts');
const CP_NODE_ARGS = (process.env.BENCH_CP_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const CP_ENV = Object.fromEntries((process.env.BENCH_CP_ENV ?? '').split(',').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const BUILTIN_ROLES = ['owner', 'admin', 'operator', 'auditor', 'viewer'];

export interface BenchControlPlane {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/** Starts `arca-control-plane serve` on the scratch database; `env` comes before BENCH_CP_ENV (which wins). */
export function startBenchControlPlane(scratch: ScratchDatabase, env: Record<string, string> = {}): Promise<BenchControlPlane> {
  const fullEnv = { ...process.env, NODE_ENV: 'production', DATABASE_URL: scratch.appUrl, ARCA_CP_PORT: '0', ARCA_CP_HOST: '127.0.0.1', ...env, ...CP_ENV };
  const child = spawn(process.execPath, [...CP_NODE_ARGS, CONTROL_PLANE, 'serve'], { env: fullEnv, stdio: ['ignore', 'pipe', 'inherit'] });
  if (process.env.BENCH_CP_LOG) child.stdout!.pipe(createWriteStream(process.env.BENCH_CP_LOG));
  const stop = async (): Promise<void> => {
    if (child.exitCode != null || child.signalCode != null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    let resolved = false;
    child.stdout!.on('data', (d: Buffer) => {
      // keep draining the request log so the server never blocks on a full pipe
      if (resolved) return;
      out += d.toString();
      const match = /"msg":"control plane listening"[^\n]*"url":"(http:\/\/[^"]+)"/.exec(out);
      if (match != null) {
        resolved = true;
        resolve({ child, url: match[1]!, stop });
      }
    });
    child.once('exit', (code) => {
      if (!resolved) reject(new Error(`the control plane exited (${code}) before listening: ${out.slice(-2000)}`));
    });
  });
}

/** The API token format (apps/control-plane/src/auth/api-token-format.ts): only SHA-256(secret) is stored. */
export function apiToken(orgId: string, tokenId: string): { token: string; secretHash: Buffer } {
  const secret = randomBytes(32);
  const hex = (uuid: string) => Buffer.from(uuid.replace(/-/g, ''), 'hex');
  return { token: `arca_pat_${Buffer.concat([hex(orgId), hex(tokenId), secret]).toString('base64url')}`, secretHash: createHash('sha256').update(secret).digest() };
}

/**
 * One organization with its built-in roles, an owner and the owner's API token (scope `*`, valid a
 * day), inserted in `tx` as bootstrap would create them. Returns the token.
 */
export async function insertBenchOrganization(
  tx: TransactionSql,
  ids: { orgId: string; userId: string; tokenId: string },
  names: { organization: string; email: string; displayName: string },
): Promise<string> {
  const { token, secretHash } = apiToken(ids.orgId, ids.tokenId);
  const roles = BUILTIN_ROLES.map((name) => ({ org_id: ids.orgId, id: randomUUID(), name, builtin: true, description: `built-in ${name} role` }));
  await tx`INSERT INTO organizations (id, name) VALUES (${ids.orgId}, ${names.organization})`;
  await tx`INSERT INTO roles ${tx(roles)}`;
  await tx`INSERT INTO users (org_id, id, email, display_name) VALUES (${ids.orgId}, ${ids.userId}, ${names.email}, ${names.displayName})`;
  await tx`INSERT INTO memberships (org_id, user_id, role_id) VALUES (${ids.orgId}, ${ids.userId}, ${roles[0]!.id})`;
  await tx`INSERT INTO api_tokens (org_id, id, user_id, name, secret_hash, scopes, expires_at)
           VALUES (${ids.orgId}, ${ids.tokenId}, ${ids.userId}, 'bench', ${secretHash}, ${['*']}, now() + interval '1 day')`;
  return token;
}
