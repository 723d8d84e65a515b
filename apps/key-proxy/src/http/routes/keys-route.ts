import { keysRequestSchema } from '@arca/contracts';
import type { HttpExchange } from '../http-exchange.ts';
import type { KeyProxyServices } from '../key-proxy-services.ts';
import { authenticateJson, openEnvelope, takeRateBudget, urlStoreId } from './key-route-support.ts';

/**
 * POST /v1/stores/{storeId}/keys: per-blob and per-file keys in one batch (at most 10,000),
 * `read` for any data operation, `write` for init/backup/prune. The hot path: derivation is one
 * HMAC per blob key from the cached PRK, and the response is assembled as a string (base64url
 * needs no JSON escaping).
 */
export function keysRoute(services: KeyProxyServices) {
  return async (exchange: HttpExchange): Promise<void> => {
    exchange.audit = { operation: 'keys' };
    const storeId = urlStoreId(exchange);
    const { claims, body } = await authenticateJson(exchange, services, keysRequestSchema);
    Object.assign(exchange.audit, { purpose: body.purpose, blobKeys: body.blobIds.length, fileKeys: body.files.length });
    const envelope = openEnvelope(body.envelope, services);
    services.authorizer.authorize(claims, body.purpose === 'write' ? 'write-keys' : 'read-keys', { urlStore: storeId, envelope });
    takeRateBudget(services, claims, body.blobIds.length + body.files.length);
    const material = await services.cache.get(body.envelope, envelope);
    const blobKeys = material.blobKeys(body.blobIds);
    const fileKeys = material.fileKeys(body.files);
    if (blobKeys.length > 0) services.metrics.keysIssued.inc({ purpose: body.purpose, kind: 'blob' }, blobKeys.length);
    if (fileKeys.length > 0) services.metrics.keysIssued.inc({ purpose: body.purpose, kind: 'file' }, fileKeys.length);
    exchange.sendJson(200, `{"blobKeys":${stringArray(blobKeys)},"fileKeys":${stringArray(fileKeys)}}`);
  };
}

function stringArray(values: readonly string[]): string {
  return values.length === 0 ? '[]' : `["${values.join('","')}"]`;
}
