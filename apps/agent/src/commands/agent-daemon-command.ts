import { access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { exportAgentPrivateKey, generateAgentIdentity } from '@arca/crypto';
import { ENROLLMENT_TOKEN_PREFIX, LEASE_MAX_SLOTS } from '@arca/contracts';
import { Option, type Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import { CliError, UsageError } from '../cli/errors.ts';
import { readAgentIdentity } from '../cli/key-proxy-options.ts';
import { AgentDaemon } from '../daemon/agent-daemon.ts';
import { agentConfigPath, agentKeyPath, DEFAULT_DATA_DIR, readAgentConfig, writeAgentConfig } from '../daemon/agent-state.ts';
import { ControlPlaneClient, ControlPlaneRequestError, normalizeControlPlaneUrl } from '../daemon/control-plane-client.ts';
import { InventoryDiscovery, parsePostgresTarget, parsePostgresTargets, targetLabel, uniqueTargets, type PostgresTarget } from '../daemon/inventory-discovery.ts';
import { JsonLog } from '../daemon/json-log.ts';
import { writeNewPrivateFile } from './agent-command.ts';
import { ARCA_VERSION } from './version-command.ts';

/** `arca agent enroll` and `arca agent run` (docs/fleet.md §7, docs/cli.md). */
export function registerAgentDaemonCommands(agent: Command, app: CliApp): void {
  const enroll = agent
    .command('enroll')
    .description('register this machine with a control plane (creates DIR/agent.pem if missing, writes DIR/agent.json)')
    .requiredOption('--url <url>', 'the control plane\'s URL, e.g. https://arca.example.com')
    .option('--token <token>', 'the enrollment token (arca_enr_…; env: ARCA_ENROLLMENT_TOKEN)')
    .option('--data-dir <dir>', `the agent's data directory (env: ARCA_AGENT_DATA_DIR, default ${DEFAULT_DATA_DIR})`)
    .addOption(new Option('--label <key=value>', 'a label for this agent (repeatable)').argParser(collectLabel).default({}))
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<{ url: string; token?: string; dataDir?: string; label: Record<string, string> }>();
        // a malformed --url is a usage error (exit 2), found before anything is written to DIR
        let url: string;
        try {
          url = normalizeControlPlaneUrl(opts.url);
        } catch (err) {
          throw new UsageError(`--url: ${err instanceof Error ? err.message : String(err)}`, 'give the control plane\'s address, e.g. --url https://arca.example.com');
        }
        const token = opts.token ?? ctx.io.env.ARCA_ENROLLMENT_TOKEN;
        if (!token) throw new UsageError('no enrollment token given', 'pass --token arca_enr_… or set ARCA_ENROLLMENT_TOKEN (an administrator creates one in the control plane)');
        if (!token.startsWith(ENROLLMENT_TOKEN_PREFIX)) throw new UsageError(`the enrollment token must start with ${ENROLLMENT_TOKEN_PREFIX}`);
        ctx.out.addSecret(token);
        const dataDir = path.resolve(opts.dataDir ?? ctx.io.env.ARCA_AGENT_DATA_DIR ?? DEFAULT_DATA_DIR);
        const keyFile = agentKeyPath(dataDir);
        await import('node:fs/promises').then((fs) => fs.mkdir(dataDir, { recursive: true, mode: 0o700 }));
        let created = false;
        if (!(await exists(keyFile))) {
          await writeNewPrivateFile(keyFile, exportAgentPrivateKey(generateAgentIdentity()));
          created = true;
        }
        const identity = await readAgentIdentity(keyFile);
        const client = new ControlPlaneClient({ url, identity });
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        ctx.io.signals?.once('SIGINT', onSigint);
        let answer;
        try {
          // a lost answer can be retried: re-enrolling the same key returns the same agent
          answer = await client.enroll(
            { token, publicJwk: identity.publicJwk, hostname: os.hostname(), os: os.platform(), arch: os.arch(), version: ARCA_VERSION, ...(Object.keys(opts.label).length > 0 ? { labels: opts.label } : {}) },
            { signal: controller.signal, maxAttempts: 5 },
          );
        } catch (err) {
          throw enrollError(err);
        } finally {
          ctx.io.signals?.off('SIGINT', onSigint);
        }
        await writeAgentConfig(dataDir, {
          version: 1,
          url: client.url,
          orgId: answer.orgId,
          agentId: answer.agentId,
          credential: answer.credential,
          heartbeatSeconds: answer.heartbeatSeconds,
          leaseWaitSeconds: answer.leaseWaitSeconds,
          enrolledAt: new Date().toISOString(),
        });
        if (ctx.out.json) {
          ctx.out.jsonDocument({ dataDir, agentKey: keyFile, keyCreated: created, thumbprint: identity.thumbprint, orgId: answer.orgId, agentId: answer.agentId, url: client.url });
          return;
        }
        ctx.out.result(`enrolled agent ${answer.agentId} in organization ${answer.orgId}`);
        ctx.out.result(`agent key: ${keyFile}${created ? ' (created)' : ''}, thumbprint ${identity.thumbprint}`);
        ctx.out.info(`configuration: ${agentConfigPath(dataDir)}; start the daemon with \`arca agent run --data-dir ${dataDir}\``);
      }),
    );
  examples(enroll, [
    'arca agent enroll --url https://arca.example.com --token arca_enr_... --label env=prod --label team=db',
    'ARCA_ENROLLMENT_TOKEN=arca_enr_... arca agent enroll --url https://arca.example.com --data-dir ~/.arca-agent --json',
  ]);

  const run = agent
    .command('run')
    .description('run the managed agent: heartbeats, leases jobs from the control plane and runs them')
    .option('--data-dir <dir>', `the agent's data directory (env: ARCA_AGENT_DATA_DIR, default ${DEFAULT_DATA_DIR})`)
    .option('--concurrency <n>', `jobs at once (1-${LEASE_MAX_SLOTS})`, (v) => positiveInt(v, '--concurrency', LEASE_MAX_SLOTS), 2)
    .option('--grace-seconds <s>', 'on SIGTERM: how long running jobs may finish before they are cancelled', (v) => positiveInt(v, '--grace-seconds', 86_400, 0), 30)
    .addOption(
      new Option('--discover-postgres [host[:port]]', 'report the databases of this PostgreSQL server (repeatable; no value or "local": libpq\'s defaults, e.g. the Unix socket; env: ARCA_AGENT_DISCOVER_POSTGRES, comma-separated)')
        .preset('local')
        .argParser(collectPostgresTarget),
    )
    .option('--discover-mounts', 'report the mount points of local disk filesystems (ext4, xfs, btrfs, zfs…; env: ARCA_AGENT_DISCOVER_MOUNTS=1)')
    .action(
      app.action(async (ctx, command) => {
        const opts = command.opts<{ dataDir?: string; concurrency: number; graceSeconds: number; discoverPostgres?: PostgresTarget[]; discoverMounts?: boolean }>();
        const dataDir = path.resolve(opts.dataDir ?? ctx.io.env.ARCA_AGENT_DATA_DIR ?? DEFAULT_DATA_DIR);
        const discover = discoveryOptions(opts, ctx.io.env);
        let config;
        try {
          config = await readAgentConfig(dataDir);
        } catch (err) {
          throw new CliError('AGENT_CONFIG', err instanceof Error ? err.message : String(err));
        }
        if (!config) throw new CliError('NOT_ENROLLED', `this agent is not enrolled (no ${agentConfigPath(dataDir)})`, { hint: 'run `arca agent enroll --url URL --token T` first (same --data-dir)' });
        const identity = await readAgentIdentity(agentKeyPath(dataDir));
        const log = new JsonLog(ctx.io.stderr, ctx.io.env.ARCA_LOG_LEVEL === 'debug' ? 'debug' : 'info');
        const client = new ControlPlaneClient({ url: config.url, identity, credential: config.credential });
        const discovery = new InventoryDiscovery({ ...discover, log, env: ctx.io.env });
        if (discovery.enabled) log.info('inventory discovery', { postgres: discover.postgres.map(targetLabel), mounts: discover.mounts });
        const daemon = new AgentDaemon({
          client,
          identity,
          dataDir,
          concurrency: opts.concurrency,
          graceSeconds: opts.graceSeconds,
          heartbeatSeconds: config.heartbeatSeconds,
          leaseWaitSeconds: config.leaseWaitSeconds,
          ...testTimings(ctx.io.env),
          log,
          version: ARCA_VERSION,
          storeAccess: { allowHttp: /^(1|true|yes|on)$/i.test(ctx.io.env.ARCA_KEY_PROXY_ALLOW_HTTP ?? '') },
          ...(discovery.enabled ? { discovery } : {}),
        });
        const onSignal = () => daemon.stop();
        ctx.io.signals?.on('SIGTERM', onSignal);
        ctx.io.signals?.on('SIGINT', onSignal);
        try {
          await daemon.run();
        } catch (err) {
          if (err instanceof ControlPlaneRequestError) throw new CliError(err.code, err.message, { hint: 'this agent was removed from the control plane: enroll it again to use it' });
          throw err;
        } finally {
          ctx.io.signals?.off('SIGTERM', onSignal);
          ctx.io.signals?.off('SIGINT', onSignal);
        }
      }),
    );
  examples(run, [
    'arca agent run',
    'arca agent run --data-dir ~/.arca-agent --concurrency 4 --grace-seconds 120',
    'arca agent run --discover-postgres --discover-postgres db2.internal:5433 --discover-mounts',
    'systemctl enable --now arca-agent   # deploy/systemd/arca-agent.service']);
  run.addHelpText(
    'after',
    `
Logs are JSON lines on stderr. Results are written to DIR/spool before they are sent and kept
until the control plane acknowledged them. SIGTERM stops leasing, lets running jobs finish for
--grace-seconds, then cancels them. What this agent reports it can protect: DIR/inventory.json
({"resources":[{"kind":"path","path":"/srv"}]}), plus what --discover-postgres and --discover-mounts
find (looked up every 5 minutes; psql runs with --no-password, credentials come from this agent's
environment: PGPASSFILE, ~/.pgpass, PGUSER, peer authentication; ARCA_PSQL names another psql).`,
  );
}

/**
 * Timings for tests and labs (ARCA_AGENT_JOB_HEARTBEAT_SECONDS, ARCA_AGENT_BACKOFF_BASE_MS,
 * ARCA_AGENT_BACKOFF_MAX_MS); production uses the documented defaults.
 */
function testTimings(env: Record<string, string | undefined>): { jobHeartbeatSeconds?: number; backoff?: { baseMs: number; maxMs: number } } {
  const num = (k: string) => (env[k] !== undefined && Number.isFinite(Number(env[k])) && Number(env[k]) > 0 ? Number(env[k]) : undefined);
  const hb = num('ARCA_AGENT_JOB_HEARTBEAT_SECONDS');
  const base = num('ARCA_AGENT_BACKOFF_BASE_MS');
  const max = num('ARCA_AGENT_BACKOFF_MAX_MS');
  return { ...(hb ? { jobHeartbeatSeconds: hb } : {}), ...(base || max ? { backoff: { baseMs: base ?? 1000, maxMs: max ?? 60_000 } } : {}) };
}

/**
 * What to discover: the flags if any is given, else ARCA_AGENT_DISCOVER_POSTGRES and
 * ARCA_AGENT_DISCOVER_MOUNTS (a fleet sets them once in the service's environment). Off by default.
 */
function discoveryOptions(opts: { discoverPostgres?: PostgresTarget[]; discoverMounts?: boolean }, env: Record<string, string | undefined>): { postgres: PostgresTarget[]; mounts: boolean } {
  let postgres = opts.discoverPostgres;
  if (postgres === undefined) {
    try {
      postgres = parsePostgresTargets(env.ARCA_AGENT_DISCOVER_POSTGRES ?? '');
    } catch (err) {
      throw new UsageError(`ARCA_AGENT_DISCOVER_POSTGRES: ${(err as Error).message}`, 'use a comma-separated list of local, HOST, HOST:PORT, [IPV6]:PORT or /socket/dir');
    }
  }
  return { postgres: uniqueTargets(postgres), mounts: opts.discoverMounts ?? /^(1|true|yes|on)$/i.test(env.ARCA_AGENT_DISCOVER_MOUNTS ?? '') };
}

function collectPostgresTarget(value: string, previous: PostgresTarget[] | undefined): PostgresTarget[] {
  try {
    return [...(previous ?? []), parsePostgresTarget(value)];
  } catch (err) {
    throw new UsageError(`--discover-postgres ${(err as Error).message}`, 'use local, HOST, HOST:PORT, [IPV6]:PORT or /socket/dir (repeat the option for several servers)');
  }
}

function collectLabel(value: string, previous: Record<string, string>): Record<string, string> {
  const m = /^([a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?)=(.{0,63})$/.exec(value);
  if (!m) throw new UsageError(`--label ${value.slice(0, 80)}: use key=value (key: lowercase letters, digits, . _ / -; value at most 63 characters)`);
  return { ...previous, [m[1]!]: m[3]! };
}

function positiveInt(value: string, what: string, max: number, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${what} must be a whole number from ${min} to ${max}, not "${value.slice(0, 40)}"`);
  return n;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

function enrollError(err: unknown): unknown {
  if (!(err instanceof ControlPlaneRequestError)) return err;
  const hint =
    err.code === 'AGENT_UNAUTHENTICATED'
      ? 'the enrollment token was refused (wrong, expired, used up or revoked): ask an administrator for a new one'
      : err.code === 'NETWORK'
        ? 'check --url and that the control plane is reachable from this machine, then run enroll again (it is safe to repeat)'
        : 'run enroll again (it is safe to repeat); if it persists, check the control plane\'s logs';
  return new CliError(err.code === 'NETWORK' ? 'CONTROL_PLANE_UNAVAILABLE' : err.code, err.message, { hint });
}
