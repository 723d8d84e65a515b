import { Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { PROOF_WINDOW_S, ReplayCache, verifyProof } from '@arca/crypto';
import { AGENT_AUTH_SCHEME, AgentApiErrorCode, PROOF_HEADER } from '@arca/contracts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { AuditThrottle } from '../audit/audit-throttle.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { AgentApiError, unauthenticated } from './agent-api-error.ts';
import { parseAgentCredential } from './agent-credential.ts';
import { AgentDirectory, type AgentIdentityRow } from './agent-directory.ts';

export const AGENT_API_LOGGER = Symbol.for('arca.control-plane.agent-api-logger');

/** A request of the agent API with the bytes its proof covers (Nest's rawBody). */
export type AgentApiRequest = FastifyRequest & { rawBody?: Buffer };

/**
 * Agent authentication (docs/fleet.md §2): `Authorization: Agent <arca_agt_…>` names the agent,
 * and the `DPoP` proof — over method, URL, the exact body bytes and the credential, signed by the
 * agent's registered Ed25519 key — authenticates it. Every failure answers the same 401 message;
 * the reason goes to the log and, throttled, to the tenant's audit log. jti replay is refused per
 * replica (a proof is accepted for PROOF_WINDOW_S).
 */
@Injectable()
export class AgentAuthenticator {
  private readonly directory: AgentDirectory;
  private readonly audit: AuditLogService;
  private readonly metrics: MetricsService;
  private readonly logger: Logger;
  private readonly publicUrl: string | null;
  private readonly replay = new ReplayCache({ ttlMs: 2 * PROOF_WINDOW_S * 1000 });
  private readonly throttle = new AuditThrottle();

  constructor(directory: AgentDirectory, audit: AuditLogService, metrics: MetricsService, @Inject(CONFIG) config: ControlPlaneConfig, @Inject(AGENT_API_LOGGER) logger: Logger) {
    this.directory = directory;
    this.audit = audit;
    this.metrics = metrics;
    this.logger = logger;
    this.publicUrl = config.fleet.publicUrl;
  }

  /** The URL a proof must name: ARCA_CP_PUBLIC_URL + path when set (behind a load balancer), else the request's own origin. */
  requestUrl(request: FastifyRequest): string {
    const path = request.url.split('?')[0] ?? '/';
    return `${this.publicUrl ?? `${request.protocol}://${request.host}`}${path}`;
  }

  /** Checks a proof made with the key of `expectedJkt` for this request and `credential`. Throws the one 401 on failure. */
  async checkProof(request: AgentApiRequest, credential: string, expectedJkt: string, audit: { orgId: string | null; who: string }): Promise<void> {
    const proof = request.headers[PROOF_HEADER.toLowerCase()];
    if (typeof proof !== 'string' || proof.length > 4096) return this.fail('no proof', audit);
    try {
      await verifyProof(proof, { method: request.method, url: this.requestUrl(request), token: credential, body: request.rawBody ?? Buffer.alloc(0), expectedJkt, replayCache: this.replay });
    } catch (err) {
      return this.fail((err as Error).message, audit);
    }
  }

  /** Authenticates an agent call; disabled agents get 403, removed ones 410. */
  async authenticate(request: AgentApiRequest): Promise<AgentIdentityRow> {
    const authorization = request.headers.authorization ?? '';
    const prefix = `${AGENT_AUTH_SCHEME} `;
    const credential = authorization.startsWith(prefix) ? authorization.slice(prefix.length).trim() : '';
    const named = parseAgentCredential(credential);
    if (named == null) return this.fail('no or malformed agent credential', { orgId: null, who: '' });
    const agent = await this.directory.find(named.orgId, named.agentId);
    // throttled per organization, not per named ID: made-up agent IDs must not each earn an audit row
    if (agent == null) return this.fail('unknown agent', { orgId: named.orgId, who: '' });
    await this.checkProof(request, credential, agent.keyThumbprint, { orgId: named.orgId, who: named.agentId });
    if (agent.status === 'removed') throw new AgentApiError(AgentApiErrorCode.Removed, 'this agent was removed from the control plane: enroll it again to use this machine');
    if (agent.status === 'disabled') throw new AgentApiError(AgentApiErrorCode.Disabled, 'this agent is disabled: an administrator can enable it again');
    return agent;
  }

  private async fail(reason: string, audit: { orgId: string | null; who: string }): Promise<never> {
    this.metrics.authFailures.inc({ reason: 'agent' });
    this.logger.warn({ msg: 'agent authentication failed', reason, orgId: audit.orgId, agentId: audit.who || null });
    if (audit.orgId != null && this.throttle.due(`agent-fail:${audit.orgId}:${audit.who}`)) {
      // the organization may not exist (a forged credential): then there is no log to write to
      await this.audit.appendStandalone(audit.orgId, {
        actor: 'anonymous', action: 'agent.auth_failed', target: audit.who === '' ? '' : `agent:${audit.who}`,
        payload: { reason, throttledPerMinute: true }, requestId: null,
      }).catch(() => undefined);
    }
    throw unauthenticated();
  }
}
