import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { apiTokens, Database } from '@arca/db';
import { createScratchDatabase, type ScratchDatabase } from '@arca/db/testing';
import { loadControlPlaneConfig, type ControlPlaneConfig } from '../../src/config/control-plane-config.ts';
import { newApiToken } from '../../src/auth/api-token-format.ts';
import { OrganizationService, type BootstrapResult } from '../../src/organizations/organization.service.ts';
import { createControlPlane, createLogger, type ControlPlane } from '../../src/server.ts';

/**
 * A control plane on a scratch Postgres database, exercised in-process through Fastify's
 * `inject` (no port, no sockets). Organizations come from the real bootstrap; tokens for other
 * users are inserted as the application itself would store them. Logs are kept in memory.
 */
export interface Harness {
  cp: ControlPlane;
  scratch: ScratchDatabase;
  config: ControlPlaneConfig;
  logs: string[];
  bootstrap(name?: string): Promise<BootstrapResult>;
  /** an API token for any user, with scopes and expiry (test fixture) */
  tokenFor(orgId: string, userId: string, options?: { scopes?: string[]; expiresAt?: Date }): Promise<{ token: string; tokenId: string }>;
  gql<T = Record<string, unknown>>(token: string | null, query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlResponse<T>>;
  request(options: { method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; payload?: string | object }): Promise<{ status: number; headers: Record<string, unknown>; body: string; json: () => unknown }>;
  close(): Promise<void>;
}

export interface GqlResponse<T> {
  status: number;
  data: T | null;
  errors: Array<{ message: string; extensions?: { code?: string; fields?: unknown } }> | undefined;
}

export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const scratch = await createScratchDatabase();
  const config = loadControlPlaneConfig({ DATABASE_URL: scratch.appUrl, DATABASE_MIGRATION_URL: scratch.ownerUrl, ARCA_CP_DB_POOL_SIZE: '4', ...env });
  const logs: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { logs.push(String(chunk)); done(); } });
  const logger = createLogger({ logLevel: 'info' }, sink);
  const db = await Database.open({ kind: 'postgres', url: scratch.appUrl, poolSize: 4 });
  const cp = await createControlPlane({ config, db, logger });
  const fastify = cp.app.getHttpAdapter().getInstance();

  const harness: Harness = {
    cp, scratch, config, logs,
    bootstrap: (name = `org-${randomUUID().slice(0, 8)}`) =>
      cp.app.get(OrganizationService).bootstrap({ organization: name, email: `owner@${name}.test`, displayName: `Owner of ${name}` }),
    async tokenFor(orgId, userId, options = {}) {
      const tokenId = randomUUID();
      const { token, secretHash } = newApiToken(orgId, tokenId);
      await db.withTenant(orgId, (tx) => tx.insert(apiTokens).values({
        orgId, id: tokenId, userId, name: 'test', secretHash, scopes: options.scopes ?? ['*'], expiresAt: options.expiresAt ?? new Date(Date.now() + 3_600_000),
      }));
      return { token, tokenId };
    },
    async gql(token, query, variables, headers = {}) {
      const response = await fastify.inject({
        method: 'POST', url: '/graphql',
        headers: { 'content-type': 'application/json', ...(token == null ? {} : { authorization: `Bearer ${token}` }), ...headers },
        payload: JSON.stringify({ query, variables }),
      });
      const body = response.json() as { data?: unknown; errors?: GqlResponse<unknown>['errors'] };
      return { status: response.statusCode, data: (body.data ?? null) as never, errors: body.errors };
    },
    async request(options) {
      const response = await fastify.inject({ method: options.method, url: options.url, headers: options.headers, payload: options.payload as never });
      return { status: response.statusCode, headers: response.headers, body: response.body, json: () => response.json() };
    },
    async close() {
      await cp.close();
      await scratch.drop();
    },
  };
  return harness;
}

/** The error codes of a GraphQL response, for compact assertions. */
export function codesOf(response: GqlResponse<unknown>): string[] {
  return (response.errors ?? []).map((e) => e.extensions?.code ?? '(none)');
}
