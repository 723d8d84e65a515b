import { rewrapRequestSchema } from '@arca/contracts';
import { encodeEnvelope, wrappedKeyOf, contextOf } from '../../keys/envelope.ts';
import type { HttpExchange } from '../http-exchange.ts';
import type { KeyProxyServices } from '../key-proxy-services.ts';
import { authenticateJson, openEnvelope, takeRateBudget } from './key-route-support.ts';

/**
 * POST /v1/envelopes/rewrap (`rewrap`): the same master key re-encrypted under the provider's
 * current KEK version (Vault rewrap, KMS ReEncrypt, local/PKCS#11 unwrap+wrap inside the proxy).
 * Same org and store; no key is returned.
 */
export function rewrapRoute(services: KeyProxyServices) {
  return async (exchange: HttpExchange): Promise<void> => {
    exchange.audit = { operation: 'rewrap' };
    const { claims, body } = await authenticateJson(exchange, services, rewrapRequestSchema);
    const envelope = openEnvelope(body.envelope, services);
    services.authorizer.authorize(claims, 'rewrap', { envelope });
    takeRateBudget(services, claims, 1);
    const wrapped = await services.provider.rewrap(wrappedKeyOf(envelope), contextOf(envelope));
    const text = encodeEnvelope({ ...envelope, kek: wrapped.kek, ct: wrapped.ct });
    exchange.audit.kek = wrapped.kek;
    services.metrics.envelopesRewrapped.inc();
    exchange.sendJson(200, { envelope: text });
  };
}
