import { Inject, Injectable } from '@nestjs/common';
import { issueJobToken, type JobOperation } from '@arca/crypto';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { FleetKeysService } from '../secrets/fleet-keys.service.ts';

/** Signs job tokens (docs/key-proxy.md §2) for one job, store and operations, bound to the agent's key. */
@Injectable()
export class JobTokenIssuer {
  private readonly config: ControlPlaneConfig;
  private readonly keys: FleetKeysService;

  constructor(@Inject(CONFIG) config: ControlPlaneConfig, keys: FleetKeysService) {
    this.config = config;
    this.keys = keys;
  }

  async issue(input: { orgId: string; agentId: string; agentKeyThumbprint: string; jobId: string; storeId: string; ops: readonly JobOperation[] }): Promise<string> {
    const key = this.keys.signingKey();
    return issueJobToken({
      issuer: this.config.fleet.jobToken.issuer,
      audience: this.config.fleet.jobToken.audience,
      org: input.orgId,
      agent: input.agentId,
      store: input.storeId,
      job: input.jobId,
      ops: [...input.ops],
      agentKeyThumbprint: input.agentKeyThumbprint,
      lifetimeSeconds: this.config.fleet.jobToken.lifetimeS,
    }, { privateKey: key.privateKey, kid: key.thumbprint });
  }

  /** The public JWKS the key proxy fetches (ARCA_KP_JWKS_URL). */
  jwks(): { keys: Array<Record<string, string>> } {
    const key = this.keys.signingKey();
    return { keys: [{ ...key.publicJwk, kid: key.thumbprint, alg: 'EdDSA', use: 'sig' }] };
  }
}
