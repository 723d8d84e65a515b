import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KeyProxyError, KeyProxyErrorCode, isKeyProxyError } from '../errors/key-proxy-error.ts';
import { HttpExchange } from './http-exchange.ts';
import type { KeyProxyServices } from './key-proxy-services.ts';
import { InvalidRequestError } from './request-validation.ts';
import { Router } from './router.ts';
import { agentKeysRoute } from './routes/agent-keys-route.ts';
import { healthzRoute, metricsRoute, readyzRoute } from './routes/health-routes.ts';
import { keysRoute } from './routes/keys-route.ts';
import { masterKeyRoute } from './routes/master-key-route.ts';
import { rewrapRoute } from './routes/rewrap-route.ts';

/**
 * The HTTP(S) server (node:http, no framework): routes requests, turns every failure into the
 * `{ error: { code, message } }` shape with its status, and, per request, updates the metrics,
 * records the audit event of key routes and logs one line (IDs, route, status, counts; never a
 * token, proof, envelope or key). Stops gracefully: no new connections, in-flight requests finish.
 */
export class KeyProxyServer {
  private readonly services: KeyProxyServices;
  private readonly server: Server;
  private readonly router: Router;
  private inflight = 0;
  private idle: (() => void) | undefined;

  constructor(services: KeyProxyServices, options: { tls?: { cert: Buffer; key: Buffer } } = {}) {
    this.services = services;
    this.router = new Router()
      .add('POST', '/v1/stores/:storeId/master-key', masterKeyRoute(services))
      .add('POST', '/v1/stores/:storeId/agent-keys', agentKeysRoute(services))
      .add('POST', '/v1/stores/:storeId/keys', keysRoute(services))
      .add('POST', '/v1/envelopes/rewrap', rewrapRoute(services))
      .add('GET', '/healthz', healthzRoute())
      .add('GET', '/readyz', readyzRoute(services))
      .add('GET', '/metrics', metricsRoute(services));
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const serverOptions = { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 32 * 1024 };
    this.server = options.tls
      ? createHttpsServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, handler)
      : createHttpServer(serverOptions, handler);
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting connections and waits (at most `graceMs`) for in-flight requests. */
  async close(graceMs = 10_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inflight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => (this.idle = resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()),
      ]);
    }
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inflight += 1;
    const exchange = new HttpExchange(req, res);
    try {
      const match = this.router.match(exchange.method, exchange.path);
      if (!match.found) {
        if (match.allowed.length > 0) res.setHeader('allow', match.allowed.join(', '));
        throw new KeyProxyError(KeyProxyErrorCode.NotFound, `no such endpoint: ${exchange.method} ${exchange.path.slice(0, 200)} (see docs/key-proxy.md §3)`);
      }
      exchange.route = match.template;
      exchange.params = match.params;
      await match.handle(exchange);
    } catch (err) {
      this.fail(exchange, err);
    } finally {
      this.finish(exchange);
      this.inflight -= 1;
      if (this.inflight === 0) this.idle?.();
    }
  }

  private fail(exchange: HttpExchange, err: unknown): void {
    if (isKeyProxyError(err)) {
      exchange.sendError(err, err instanceof InvalidRequestError && err.fields.length > 0 ? { fields: err.fields } : {});
      return;
    }
    this.services.logger.error('request failed unexpectedly', { requestId: exchange.requestId, route: exchange.route, error: err });
    exchange.sendError(new KeyProxyError(KeyProxyErrorCode.Internal, `internal error (request ${exchange.requestId}): the proxy's log has the details`));
  }

  private finish(exchange: HttpExchange): void {
    const { metrics, logger, audit } = this.services;
    const status = exchange.status;
    const elapsedMs = exchange.elapsedMs();
    metrics.requests.inc({ route: exchange.route, status: String(status) });
    metrics.requestDuration.observe({ route: exchange.route }, elapsedMs / 1000);
    if (exchange.errorCode) metrics.refusals.inc({ code: exchange.errorCode });
    const draft = exchange.audit;
    if (draft) {
      audit.record({
        time: new Date().toISOString(),
        org: draft.org ?? null,
        agent: draft.agent ?? null,
        store: draft.store ?? (exchange.params.storeId && /^[0-9a-f]{64}$/.test(exchange.params.storeId) ? exchange.params.storeId : null),
        job: draft.job ?? null,
        operation: draft.operation,
        purpose: draft.purpose ?? null,
        blobKeys: draft.blobKeys ?? 0,
        fileKeys: draft.fileKeys ?? 0,
        outcome: status < 400 ? 'success' : 'refused',
        ...(exchange.errorCode ? { code: exchange.errorCode } : {}),
        ...(exchange.errorMessage !== undefined ? { reason: exchange.errorMessage } : {}),
        requestId: exchange.requestId,
        agentKeyThumbprint: draft.agentKeyThumbprint ?? null,
        ...(draft.tokenOps ? { tokenOps: draft.tokenOps } : {}),
        ...(draft.tokenId ? { tokenId: draft.tokenId } : {}),
        ...(draft.kek ? { kek: draft.kek } : {}),
      });
    }
    const level = draft ? (status >= 500 ? 'warn' : 'info') : 'debug';
    if (logger.enabled(level)) {
      logger.log(level, 'request', {
        requestId: exchange.requestId,
        method: exchange.method,
        route: exchange.route,
        status,
        ms: Math.round(elapsedMs * 100) / 100,
        code: exchange.errorCode,
        org: draft?.org,
        agent: draft?.agent,
        store: draft?.store,
        job: draft?.job,
        purpose: draft?.purpose,
        blobKeys: draft?.blobKeys,
        fileKeys: draft?.fileKeys,
      });
    }
  }
}
