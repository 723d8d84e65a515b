import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { isDbError } from '@arca/db';
import { loadControlPlaneConfig, redactUrl, type ControlPlaneConfig } from '../config/control-plane-config.ts';
import { isControlPlaneError } from '../errors/control-plane-error.ts';
import { OrganizationService } from '../organizations/organization.service.ts';
import { createControlPlane, createLogger, migrateDatabase, openDatabase } from '../server.ts';

const USAGE = `usage: arca-control-plane <command> [options]

commands:
  serve [--migrate]          start the server (--migrate: apply pending migrations first)
  migrate                    apply pending database migrations and exit
  bootstrap --org NAME --email EMAIL [--link-hours N]
                             with OIDC configured: create an organization with no user and print
                             a one-time owner sign-in link for EMAIL (default 24 hours)
  bootstrap --org-id ID --email EMAIL [--link-hours N]
                             a new owner link for an organization that has no active owner
  bootstrap --org NAME --email EMAIL --api-token [--name NAME] [--token-days N]
                             create an organization, its owner and the owner's first API token
                             (printed once); the default when OIDC is not configured

Configuration comes from the environment: docs/control-plane.md lists every variable.
With no DATABASE_URL the control plane runs on an embedded database in ARCA_CP_DATA_DIR.`;

/** Returns the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  let config: ControlPlaneConfig;
  try {
    config = loadControlPlaneConfig(env);
  } catch (err) {
    process.stderr.write(`arca-control-plane: ${(err as Error).message}\n`);
    return 78; // EX_CONFIG
  }
  try {
    switch (command) {
      case 'serve':
        return await serve(config, rest);
      case 'migrate': {
        const { applied } = await migrateDatabase(config);
        process.stdout.write(applied.length === 0 ? 'the database is up to date\n' : `applied: ${applied.join(', ')}\n`);
        return 0;
      }
      case 'bootstrap':
        return await bootstrap(config, rest);
      case undefined:
      case 'help':
      case '--help':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 64 : 0;
      default:
        process.stderr.write(`arca-control-plane: unknown command "${command}"\n${USAGE}\n`);
        return 64; // EX_USAGE
    }
  } catch (err) {
    if (isControlPlaneError(err) || isDbError(err)) {
      process.stderr.write(`arca-control-plane: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

async function serve(config: ControlPlaneConfig, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { migrate: { type: 'boolean', default: false } }, strict: true });
  // Request logs are buffered (4 KiB, or 1 s at most) rather than written line by line: one
  // write system call per request was a visible share of the CPU under load. pino flushes the
  // buffer synchronously on exit, so only a killed process can lose the last second of lines.
  const logger = createLogger(config, pino.destination({ dest: 1, sync: false, minLength: 4096 }));
  const flushTimer = setInterval(() => logger.flush(), 1000);
  flushTimer.unref();
  const db = await openDatabase(config, { migrate: values.migrate });
  const controlPlane = await createControlPlane({ config, db, logger });
  const url = await controlPlane.listen();
  logger.info({
    msg: 'control plane listening',
    url,
    graphql: `${url}/graphql`,
    database: config.database.kind === 'postgres' ? redactUrl(config.database.url) : `embedded (${config.database.dataDir})`,
  });
  if (config.database.kind === 'pglite') {
    logger.info({ msg: 'no DATABASE_URL: using the embedded database. Create an organization and its first API token with `arca-control-plane bootstrap --org NAME --email EMAIL`, then call the GraphQL API with "authorization: Bearer <token>".' });
  }
  logger.flush();
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      logger.info({ msg: 'shutting down', signal });
      // a second signal, or a drain that takes too long, ends the process regardless
      const timer = setTimeout(() => {
        logger.error({ msg: 'shutdown timed out', timeoutMs: config.shutdownTimeoutMs });
        process.exit(1);
      }, config.shutdownTimeoutMs);
      timer.unref();
      controlPlane.close().then(resolve, (err: unknown) => {
        logger.error({ err }, 'error while shutting down');
        resolve();
      });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(flushTimer);
  logger.info({ msg: 'stopped' });
  logger.flush();
  return 0;
}

async function bootstrap(config: ControlPlaneConfig, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      org: { type: 'string' }, 'org-id': { type: 'string' }, email: { type: 'string' }, name: { type: 'string' },
      'api-token': { type: 'boolean', default: false }, 'token-days': { type: 'string' }, 'link-hours': { type: 'string' },
    },
    strict: true,
  });
  const apiToken = values['api-token'] || config.oidc == null;
  const email = values.email;
  if ((values.org == null) === (values['org-id'] == null) || email == null || (apiToken && values.org == null)) {
    process.stderr.write('arca-control-plane: bootstrap needs --email EMAIL and either --org NAME or (sign-in link only) --org-id ID\n');
    return 64;
  }
  const logger = createLogger({ logLevel: 'warn' });
  const db = await openDatabase(config);
  const controlPlane = await createControlPlane({ config, db, logger });
  try {
    if (!apiToken) {
      const link = await controlPlane.app.get(OrganizationService).bootstrapLink({
        organization: values.org, orgId: values['org-id'], email,
        hours: values['link-hours'] == null ? undefined : Number(values['link-hours']),
      });
      process.stdout.write(
        `organization ${link.orgId}: owner sign-in link for ${values.email}, valid until ${link.expiresAt.toISOString()}, usable once\n` +
          `(whoever opens it must sign in with that email, verified by the identity provider; shown once, send it privately):\n${link.url}\n`,
      );
      return 0;
    }
    const result = await controlPlane.app.get(OrganizationService).bootstrap({
      organization: values.org ?? '',
      email,
      displayName: values.name ?? email,
      tokenDays: values['token-days'] == null ? undefined : Number(values['token-days']),
    });
    process.stdout.write(
      `organization ${result.orgId} created; owner ${values.email} (${result.userId})\n` +
        `API token (shown once, store it now):\n${result.token}\n`,
    );
    return 0;
  } finally {
    await controlPlane.close();
  }
}
