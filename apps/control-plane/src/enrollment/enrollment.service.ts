import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, eq, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { jwkThumbprint } from '@arca/crypto';
import { AgentApiErrorCode, LEASE_MAX_WAIT_SECONDS, type EnrollRequest, type EnrollResponse } from '@arca/contracts';
import { agents, enrollmentTokens, type Database } from '@arca/db';
import { AgentApiError, unauthenticated } from '../agent-api/agent-api-error.ts';
import { AGENT_API_LOGGER, AgentAuthenticator, type AgentApiRequest } from '../agent-api/agent-authenticator.service.ts';
import { agentCredential } from '../agent-api/agent-credential.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { AuditThrottle } from '../audit/audit-throttle.ts';
import { secretMatches } from '../auth/api-token-format.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { labelsSchema } from '../policies/label-selector.ts';
import { parseEnrollmentToken } from './enrollment-token-format.ts';

/**
 * `POST /agent/v1/enroll` (docs/fleet.md §2-3): an agent registers its Ed25519 public key with an
 * enrollment token, proving it holds the private key (the proof's key is the key registered, its
 * `ath` the enrollment token). Re-enrolling a key already registered in the organization returns
 * the same agent and uses nothing, so a lost answer can be retried.
 *
 * Labels: the token's labels are what an administrator decided about the machines it enrolls
 * (e.g. `environment=prod`, which role conditions rely on), so the agent may add labels of its own
 * but never change one the token sets.
 */
@Injectable()
export class EnrollmentService {
  private readonly db: Database;
  private readonly authenticator: AgentAuthenticator;
  private readonly audit: AuditLogService;
  private readonly logger: Logger;
  private readonly config: ControlPlaneConfig;
  private readonly throttle = new AuditThrottle();

  constructor(@Inject(DATABASE) db: Database, authenticator: AgentAuthenticator, audit: AuditLogService, @Inject(CONFIG) config: ControlPlaneConfig, @Inject(AGENT_API_LOGGER) logger: Logger) {
    this.db = db;
    this.authenticator = authenticator;
    this.audit = audit;
    this.config = config;
    this.logger = logger;
  }

  async enroll(request: AgentApiRequest, body: EnrollRequest): Promise<{ created: boolean; answer: EnrollResponse }> {
    const parsed = parseEnrollmentToken(body.token);
    const thumbprint = jwkThumbprint(body.publicJwk);
    // the proof first: nobody learns anything about a token without holding the key being registered
    await this.authenticator.checkProof(request, body.token, thumbprint, { orgId: parsed?.orgId ?? null, who: '' });
    if (parsed == null) throw unauthenticated();
    const requested = labelsSchema.safeParse(body.labels ?? {});
    if (!requested.success) {
      throw new AgentApiError(AgentApiErrorCode.BadRequest, `labels: ${requested.error.issues[0]?.message ?? 'invalid'} (keys: lowercase letters, digits, . _ / -; values: letters, digits, . _ -)`);
    }
    const { orgId } = parsed;
    const outcome = await this.db.withTenant(orgId, async (tx) => {
      const [token] = await tx.select().from(enrollmentTokens).where(and(eq(enrollmentTokens.orgId, orgId), eq(enrollmentTokens.id, parsed.tokenId))).for('update');
      if (token == null || !secretMatches(parsed.secret, Buffer.from(token.secretHash))) return { refused: 'unknown token' as const };
      const [existing] = await tx.select().from(agents).where(and(eq(agents.orgId, orgId), eq(agents.keyThumbprint, thumbprint)));
      if (existing != null) {
        if (existing.status === 'removed') return { removed: true as const };
        return { agentId: existing.id, created: false };
      }
      if (token.revokedAt != null) return { refused: 'revoked' as const };
      if (token.expiresAt.getTime() <= Date.now()) return { refused: 'expired' as const };
      if (token.uses >= token.maxUses) return { refused: 'used up' as const };
      const agentId = randomUUID();
      const labels = { ...requested.data, ...token.labels };
      await tx.insert(agents).values({
        orgId, id: agentId, name: body.hostname, publicKeyX: body.publicJwk.x, keyThumbprint: thumbprint, status: 'active', labels,
        hostname: body.hostname, os: body.os, arch: body.arch, version: body.version, enrolledWith: token.id,
      });
      await tx.update(enrollmentTokens).set({ uses: sql`${enrollmentTokens.uses} + 1` }).where(and(eq(enrollmentTokens.orgId, orgId), eq(enrollmentTokens.id, token.id)));
      await this.audit.append(tx, orgId, {
        actor: `agent:${agentId}`, action: 'agent.enrolled', target: `agent:${agentId}`,
        payload: { enrollmentTokenId: token.id, keyThumbprint: thumbprint, hostname: body.hostname, os: body.os, arch: body.arch, version: body.version, labels },
        requestId: request.id,
      });
      return { agentId, created: true };
    });
    if ('refused' in outcome) {
      this.logger.warn({ msg: 'enrollment refused', reason: outcome.refused, orgId });
      // throttled per token (per organization for made-up token IDs), so a flood of refusals cannot fill the audit log
      const throttleKey = outcome.refused === 'unknown token' ? `enroll:${orgId}` : `enroll:${orgId}:${parsed.tokenId}`;
      if (this.throttle.due(throttleKey)) {
        await this.audit.appendStandalone(orgId, {
          actor: 'anonymous', action: 'agent.enroll_refused', target: outcome.refused === 'unknown token' ? '' : `enrollment-token:${parsed.tokenId}`,
          payload: { reason: outcome.refused, keyThumbprint: thumbprint, throttledPerMinute: true }, requestId: request.id,
        }).catch(() => undefined);
      }
      throw unauthenticated();
    }
    if ('removed' in outcome) throw new AgentApiError(AgentApiErrorCode.Removed, 'this key belonged to an agent that was removed: create a new key (delete the agent key file) and enroll again');
    return {
      created: outcome.created,
      answer: {
        orgId, agentId: outcome.agentId, credential: agentCredential(orgId, outcome.agentId),
        heartbeatSeconds: this.config.fleet.heartbeatSeconds, leaseWaitSeconds: LEASE_MAX_WAIT_SECONDS - 5,
      },
    };
  }
}
