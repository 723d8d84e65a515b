import { KEY_PROXY_MAX_BODY_BYTES, storeIdSchema } from '@arca/contracts';
import type { JobTokenClaims } from '@arca/crypto';
import type { z } from 'zod';
import { KeyProxyError, KeyProxyErrorCode } from '../../errors/key-proxy-error.ts';
import { decodeEnvelope, type Envelope } from '../../keys/envelope.ts';
import type { HttpExchange } from '../http-exchange.ts';
import type { KeyProxyServices } from '../key-proxy-services.ts';
import { parseJsonBody, requireJsonContentType } from '../request-validation.ts';

/**
 * The steps every key route shares, in order: JSON body within the size limit → job token and
 * proof (which covers the exact body bytes) → schema validation. Then the route authorizes, takes
 * from the agent's rate budget and acts. What is learned is put on the exchange's audit draft.
 */
export async function authenticateJson<S extends z.ZodType>(
  exchange: HttpExchange,
  services: KeyProxyServices,
  schema: S,
): Promise<{ claims: JobTokenClaims; body: z.output<S> }> {
  requireJsonContentType(exchange.req.headers);
  const raw = await exchange.readBody(KEY_PROXY_MAX_BODY_BYTES);
  const claims = await services.authenticator.authenticate({ method: exchange.method, path: exchange.path, headers: exchange.req.headers, body: raw });
  exchange.claims = claims;
  Object.assign(exchange.audit ??= { operation: 'request' }, {
    org: claims.org,
    agent: claims.agent,
    store: claims.store,
    job: claims.job,
    agentKeyThumbprint: claims.cnf.jkt,
    tokenOps: claims.ops,
    tokenId: claims.jti,
  });
  return { claims, body: parseJsonBody(raw, schema) };
}

/** The store ID path parameter, validated. */
export function urlStoreId(exchange: HttpExchange): string {
  const parsed = storeIdSchema.safeParse(exchange.params.storeId);
  if (!parsed.success) throw new KeyProxyError(KeyProxyErrorCode.InvalidRequest, 'the store ID in the URL must be 64 lowercase hex characters');
  return parsed.data;
}

/** Decodes an envelope and checks that this proxy's provider can open it. */
export function openEnvelope(text: string, services: KeyProxyServices): Envelope {
  const envelope = decodeEnvelope(text);
  if (envelope.provider !== services.provider.name) {
    throw new KeyProxyError(
      KeyProxyErrorCode.ProviderError,
      `the envelope was wrapped by the ${envelope.provider} KEK provider, but this key proxy uses ${services.provider.name}`,
    );
  }
  return envelope;
}

/** Takes `cost` keys from the agent key's budget; RATE_LIMITED with retry-after otherwise. */
export function takeRateBudget(services: KeyProxyServices, claims: JobTokenClaims, cost: number): void {
  const decision = services.rateLimiter.take(claims.cnf.jkt, cost);
  if (!decision.allowed) {
    services.metrics.rateLimited.inc();
    throw new KeyProxyError(
      KeyProxyErrorCode.RateLimited,
      `this agent is asking for keys faster than the proxy allows: retry in ${decision.retryAfterSeconds} s`,
      { retryAfter: decision.retryAfterSeconds },
    );
  }
}
