import { randomBytes, timingSafeEqual } from 'node:crypto';
import { masterKeyRequestSchema } from '@arca/contracts';
import { KeyProxyError, KeyProxyErrorCode } from '../../errors/key-proxy-error.ts';
import { encodeEnvelope, envelopeDigest, type Envelope } from '../../keys/envelope.ts';
import type { HttpExchange } from '../http-exchange.ts';
import type { KeyProxyServices } from '../key-proxy-services.ts';
import { authenticateJson, takeRateBudget, urlStoreId } from './key-route-support.ts';

/**
 * POST /v1/stores/{storeId}/master-key (`init`): a new random master key for the store, wrapped
 * by the KEK provider; only the envelope is returned. The wrap is checked by unwrapping it once
 * before the envelope is handed out, and the store is recorded so a second init is refused (409).
 */
export function masterKeyRoute(services: KeyProxyServices) {
  return async (exchange: HttpExchange): Promise<void> => {
    exchange.audit = { operation: 'master-key' };
    const storeId = urlStoreId(exchange);
    const { claims } = await authenticateJson(exchange, services, masterKeyRequestSchema);
    services.authorizer.authorize(claims, 'create-master-key', { urlStore: storeId });
    takeRateBudget(services, claims, 1);
    if (services.masterKeys.exists(storeId)) throw masterKeyExists(storeId);

    const context = { org: claims.org, store: storeId };
    const masterKey = randomBytes(32);
    try {
      const wrapped = await services.provider.wrap(masterKey, context);
      const check = await services.provider.unwrap(wrapped, context);
      const same = check.length === masterKey.length && timingSafeEqual(check, masterKey);
      check.fill(0);
      if (!same) throw new KeyProxyError(KeyProxyErrorCode.ProviderError, `the ${services.provider.name} KEK provider did not return the wrapped key on unwrap`);
      const envelope: Envelope = { v: 1, provider: services.provider.name, kek: wrapped.kek, org: claims.org, store: storeId, ct: wrapped.ct };
      const text = encodeEnvelope(envelope);
      const recorded = services.masterKeys.record({
        store: storeId, org: claims.org, provider: envelope.provider, kek: envelope.kek, envelopeSha256: envelopeDigest(text),
        agent: claims.agent, job: claims.job,
      });
      if (!recorded) throw masterKeyExists(storeId); // a concurrent init won
      exchange.audit.kek = envelope.kek;
      services.cache.prime(text, envelope, masterKey); // the agent asks for its keys next
      services.metrics.masterKeysCreated.inc();
      exchange.sendJson(200, { envelope: text });
    } finally {
      masterKey.fill(0);
    }
  };
}

function masterKeyExists(storeId: string): KeyProxyError {
  return new KeyProxyError(
    KeyProxyErrorCode.MasterKeyExists,
    `this proxy already created the master key of store ${storeId}: a store is initialized once; use its envelope, or initialize a new store ID`,
  );
}
