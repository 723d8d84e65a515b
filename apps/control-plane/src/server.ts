import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import { pino, type DestinationStream, type Logger } from 'pino';
import { Database, runMigrations, postgresSqlClient, createPostgresSql, type MigrationStatus } from '@arca/db';
import { AppModule } from './app.module.ts';
import type { ControlPlaneConfig } from './config/control-plane-config.ts';
import { HttpErrorFilter } from './ops/http-error.filter.ts';
import { Lifecycle } from './ops/lifecycle.ts';
import { MetricsService } from './ops/metrics.service.ts';
import { PinoNestLogger } from './ops/pino-nest-logger.ts';
import { SchedulerService } from './scheduler/scheduler.service.ts';
import { LeaseRecheck } from './agent-api/lease-recheck.service.ts';
import { agentApiRouteOptions } from './agent-api/agent-api-route-options.ts';
import { AgentApiRoutes } from './agent-api/agent-api-routes.service.ts';
import { LeaseSweeper } from './jobs/lease-sweeper.service.ts';
import { JobEvents } from './jobs/job-events.ts';
import { FollowUpService } from './scheduler/follow-up.service.ts';
import { AGENT_API_PREFIX } from '@arca/contracts';

/** the agent API's routes (docs/fleet.md §3), for the hooks below */
const AGENT_API_ROUTE_PREFIX = `${AGENT_API_PREFIX}/`;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface ControlPlane {
  app: NestFastifyApplication;
  db: Database;
  logger: Logger;
  /** the base URL once listening */
  url: string | null;
  listen(): Promise<string>;
  /** stops accepting, drains in-flight requests, closes the database (idempotent) */
  close(): Promise<void>;
}

export function createLogger(config: Pick<ControlPlaneConfig, 'logLevel'>, destination?: NodeJS.WritableStream | DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: 'arca-control-plane' },
      // credentials never reach a log line
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'], censor: '[redacted]' },
    },
    destination as never,
  );
}

/** Applies pending migrations with the owner's URL (Postgres) — the `migrate` command. */
export async function migrateDatabase(config: ControlPlaneConfig): Promise<{ applied: string[] }> {
  if (config.database.kind === 'pglite') {
    const db = await Database.open({ kind: 'pglite', dataDir: config.database.dataDir, migrate: true });
    await db.close();
    return { applied: ['(embedded database migrated)'] };
  }
  const sql = createPostgresSql({ url: config.database.migrationUrl, max: 1, applicationName: 'arca-control-plane-migrate' });
  try {
    const result = await runMigrations(postgresSqlClient(sql));
    return { applied: result.applied.map((m) => m.name) };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Opens the runtime database connection and refuses one that would bypass row-level security. */
export async function openDatabase(config: ControlPlaneConfig, options: { migrate?: boolean } = {}): Promise<Database> {
  if (config.database.kind === 'pglite') {
    return Database.open({ kind: 'pglite', dataDir: config.database.dataDir, migrate: options.migrate === true });
  }
  if (options.migrate === true) await migrateDatabase(config);
  const db = await Database.open({ kind: 'postgres', url: config.database.url, poolSize: config.database.poolSize });
  try {
    await db.assertRuntimeRoleEnforcesRls();
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/**
 * Builds the Nest application on Fastify: request IDs (x-request-id, echoed back), pino request
 * logs, body size limit, metrics hooks and JSON errors for malformed requests.
 */
export async function createControlPlane(options: { config: ControlPlaneConfig; db: Database; logger?: Logger }): Promise<ControlPlane> {
  const { config, db } = options;
  const logger = options.logger ?? createLogger(config);
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    bodyLimit: config.maxBodyBytes,
    trustProxy: config.trustProxy,
    genReqId: (req: IncomingMessage) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    return503OnClosing: true,
    // one access-log line per request (the onResponse hook below), not Fastify's two
    logController: new LogController({ disableRequestLogging: true }),
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.register({ config, db, logger }), adapter, {
    logger: new PinoNestLogger(logger.child({ component: 'nest' })),
    abortOnError: false,
    // the agent API's proofs of possession cover the exact body bytes (docs/fleet.md §2)
    rawBody: true,
  });
  const fastify = app.getHttpAdapter().getInstance();
  const metrics = app.get(MetricsService);
  fastify.addHook('onRoute', agentApiRouteOptions);
  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  // One scope of shared reads per request: the GraphQL resolvers of a request that read the
  // same tenant at the same time share one read transaction (libs/db readTenant). A callback
  // hook, so that the route handler (and everything it starts) runs inside the scope.
  fastify.addHook('preHandler', (request, _reply, done) => (request.url.startsWith(AGENT_API_ROUTE_PREFIX) ? done() : db.withReadScope(done)));
  fastify.addHook('onResponse', async (request, reply) => {
    // an agent fleet's routine calls (thousands a second) are logged at debug level; their failures as usual
    const level = reply.statusCode < 400 && request.url.startsWith(AGENT_API_ROUTE_PREFIX) ? 'debug' : 'info';
    request.log[level]({ req: { method: request.method, url: request.url }, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime }, 'request completed');
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
  app.get(AgentApiRoutes).register(fastify);
  // unknown routes (Nest's NotFoundException) and route errors answer in our JSON error shape
  app.useGlobalFilters(new HttpErrorFilter());
  await app.init();
  // a completion recorded on this replica sets off its follow-ups (store status, replicate, forget, restore-test)
  const followUps = app.get(FollowUpService);
  app.get(JobEvents).onCompleted((change) => followUps.onCompleted(change.orgId, change.jobId, change.kind));

  let closing: Promise<void> | null = null;
  const controlPlane: ControlPlane = {
    app,
    db,
    logger,
    url: null,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      // every replica schedules; started once serving, stopped by app.close (shutdown hook)
      app.get(SchedulerService).start();
      app.get(LeaseSweeper).start();
      app.get(LeaseRecheck).start();
      const address = fastify.server.address();
      const port = typeof address === 'object' && address != null ? address.port : config.port;
      controlPlane.url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
      return controlPlane.url;
    },
    close() {
      closing ??= (async () => {
        app.get(Lifecycle).shuttingDown = true;
        await app.close();
        await db.close();
      })();
      return closing;
    },
  };
  return controlPlane;
}

export type { MigrationStatus };
