import { constants } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';

/**
 * The daemon's data directory (docs/fleet.md §7): `agent.pem` (the agent key, 0600), `agent.json`
 * (where to find the control plane and who this agent is: nothing secret, the credential only
 * names the agent), `spool/` (results not yet acknowledged), `scratch/` (restore tests),
 * `inventory.json` (optional: what this agent can protect).
 */
export const DEFAULT_DATA_DIR = '/var/lib/arca-agent';

export interface AgentConfig {
  version: 1;
  url: string;
  orgId: string;
  agentId: string;
  credential: string;
  heartbeatSeconds: number;
  leaseWaitSeconds: number;
  enrolledAt: string;
}

function parseAgentConfig(text: string, file: string): AgentConfig {
  const bad = (why: string) => new Error(`${file} is not a valid agent configuration (${why}): enroll again with \`arca agent enroll\``);
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (v === null || typeof v !== 'object' || v.version !== 1) throw bad('version');
  for (const k of ['url', 'orgId', 'agentId', 'credential', 'enrolledAt']) if (typeof v[k] !== 'string' || (v[k] as string).length === 0) throw bad(k);
  for (const k of ['heartbeatSeconds', 'leaseWaitSeconds']) if (!Number.isInteger(v[k]) || (v[k] as number) <= 0) throw bad(k);
  return v as unknown as AgentConfig;
}

export function agentKeyPath(dataDir: string): string {
  return path.join(dataDir, 'agent.pem');
}

export function agentConfigPath(dataDir: string): string {
  return path.join(dataDir, 'agent.json');
}

export async function readAgentConfig(dataDir: string): Promise<AgentConfig | undefined> {
  let text: string;
  try {
    text = await readFile(agentConfigPath(dataDir), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // the usual cause: the agent runs as another user than the one that enrolled (systemd's User=)
    if (code === 'EACCES' || code === 'EPERM') {
      throw new Error(`cannot read ${agentConfigPath(dataDir)} (${code}): the data directory must belong to the user the agent runs as (chown -R it, or enroll as that user)`, { cause: err });
    }
    if (code === 'ENOTDIR') throw new Error(`${dataDir} is not a directory (give --data-dir the agent's data directory)`, { cause: err });
    throw err;
  }
  return parseAgentConfig(text, agentConfigPath(dataDir));
}

/** Atomic: temp file, fsync, rename, so a crash leaves the old or the new agent.json. */
export async function writeAgentConfig(dataDir: string, config: AgentConfig): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = agentConfigPath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(config, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
