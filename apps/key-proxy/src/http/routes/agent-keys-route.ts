import { agentKeysRequestSchema } from '@arca/contracts';
import type { HttpExchange } from '../http-exchange.ts';
import type { KeyProxyServices } from '../key-proxy-services.ts';
import { authenticateJson, openEnvelope, takeRateBudget, urlStoreId } from './key-route-support.ts';

/** POST /v1/stores/{storeId}/agent-keys (any data operation): the store's K_mac and K_cdc. */
export function agentKeysRoute(services: KeyProxyServices) {
  return async (exchange: HttpExchange): Promise<void> => {
    exchange.audit = { operation: 'agent-keys' };
    const storeId = urlStoreId(exchange);
    const { claims, body } = await authenticateJson(exchange, services, agentKeysRequestSchema);
    const envelope = openEnvelope(body.envelope, services);
    services.authorizer.authorize(claims, 'agent-keys', { urlStore: storeId, envelope });
    takeRateBudget(services, claims, 2);
    const material = await services.cache.get(body.envelope, envelope);
    const keys = material.agentKeys();
    services.metrics.keysIssued.inc({ purpose: 'agent', kind: 'mac' });
    services.metrics.keysIssued.inc({ purpose: 'agent', kind: 'chunker' });
    exchange.sendJson(200, keys);
  };
}
