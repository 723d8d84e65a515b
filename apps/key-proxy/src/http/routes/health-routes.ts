import type { HttpExchange } from '../http-exchange.ts';
import type { KeyProxyServices } from '../key-proxy-services.ts';

/** GET /healthz: the process is up. */
export function healthzRoute() {
  return async (exchange: HttpExchange): Promise<void> => exchange.sendJson(200, { status: 'ok' });
}

/** GET /readyz: 200 when the KEK provider answers, 503 with the reason otherwise. */
export function readyzRoute(services: KeyProxyServices) {
  return async (exchange: HttpExchange): Promise<void> => {
    const readiness = await services.readiness.check();
    const provider = services.provider.name;
    if (readiness.ready) exchange.sendJson(200, { status: 'ready', provider });
    else exchange.sendJson(503, { status: 'unavailable', provider, reason: readiness.reason });
  };
}

/** GET /metrics: Prometheus text format. */
export function metricsRoute(services: KeyProxyServices) {
  return async (exchange: HttpExchange): Promise<void> => {
    const { contentType, body } = await services.metrics.render();
    exchange.sendText(200, body, contentType);
  };
}
