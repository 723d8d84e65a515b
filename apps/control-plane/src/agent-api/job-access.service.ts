import { Inject, Injectable } from '@nestjs/common';
import { and, eq, inArray } from 'drizzle-orm';
import { JOB_KIND_TOKEN_OPS, storeCredentialsSchema, type JobKind, type LeasedJob, type StoreAccess } from '@arca/contracts';
import type { JobOperation } from '@arca/crypto';
import { jobs, stores, type Database, type JobRow, type StoreRow } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { JobTokenIssuer } from '../job-tokens/job-token-issuer.service.ts';
import { ACTIVE_JOB_STATUSES, LeaseLostError, type LeasedJobRow } from '../jobs/job-queue.service.ts';
import { FleetKeysService } from '../secrets/fleet-keys.service.ts';
import { credentialsAad } from '../stores/store-credentials.ts';
import type { AgentIdentityRow } from './agent-directory.ts';

/**
 * What an agent receives with a job (docs/fleet.md §3): the store access — with the backend
 * credentials unsealed for this lease only, never for a store the job does not name — and job
 * tokens for the key proxy, bound to the agent's key, carrying exactly the operations of the
 * job's kind. The control plane never sees a data key: the tokens only authorise the agent to ask
 * the key proxy for them.
 */
@Injectable()
export class JobAccessService {
  private readonly db: Database;
  private readonly keys: FleetKeysService;
  private readonly issuer: JobTokenIssuer;
  private readonly leaseSeconds: number;

  constructor(@Inject(DATABASE) db: Database, keys: FleetKeysService, issuer: JobTokenIssuer, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.keys = keys;
    this.issuer = issuer;
    this.leaseSeconds = config.fleet.leaseSeconds;
  }

  /** The wire form of freshly leased jobs (their stores came with the lease). */
  async leasedJobs(agent: AgentIdentityRow, rows: LeasedJobRow[]): Promise<LeasedJob[]> {
    if (rows.length === 0) return [];
    return Promise.all(rows.map(async (job) => {
      const store = job.storeId == null ? undefined : job.leasedStores.find((s) => s.id === job.storeId);
      if (store == null) throw new Error(`job ${job.id} names no store`);
      const copyStore = job.copyStoreId == null ? undefined : job.leasedStores.find((s) => s.id === job.copyStoreId);
      const tokens = await this.tokens(agent, job, store, copyStore);
      return {
        id: job.id, kind: job.kind as JobKind, attempt: job.attempt, leaseExpiresAt: (job.leaseExpiresAt ?? new Date()).toISOString(), leaseSeconds: this.leaseSeconds,
        spec: job.spec as Record<string, unknown>, store: this.storeAccess(agent.orgId, store), token: tokens.token,
        ...(copyStore != null ? { copyStore: this.storeAccess(agent.orgId, copyStore) } : {}),
        ...(tokens.copyToken != null ? { copyToken: tokens.copyToken } : {}),
      };
    }));
  }

  /** Fresh tokens for a job this agent holds in this attempt (long jobs outlive their first tokens). */
  async refreshTokens(agent: AgentIdentityRow, jobId: string, attempt: number): Promise<{ token: string; copyToken?: string }> {
    const found = await this.db.readTenant(agent.orgId, async (tx) => {
      const [job] = await tx.select().from(jobs).where(and(eq(jobs.orgId, agent.orgId), eq(jobs.id, jobId)));
      if (job == null || job.agentId !== agent.agentId || job.attempt !== attempt || !ACTIVE_JOB_STATUSES.includes(job.status)) return null;
      const ids = [job.storeId, job.copyStoreId].filter((s): s is string => s != null);
      const rows = ids.length === 0 ? [] : await tx.select().from(stores).where(and(eq(stores.orgId, agent.orgId), inArray(stores.id, ids)));
      return { job, rows };
    });
    if (found == null) throw new LeaseLostError();
    const store = found.rows.find((s) => s.id === found.job.storeId);
    if (store == null) throw new LeaseLostError();
    return this.tokens(agent, found.job, store, found.rows.find((s) => s.id === found.job.copyStoreId));
  }

  private async tokens(agent: AgentIdentityRow, job: JobRow, store: StoreRow, copyStore: StoreRow | undefined): Promise<{ token: string; copyToken?: string }> {
    const ops = JOB_KIND_TOKEN_OPS[job.kind as JobKind];
    const issue = (storeId: string, list: readonly string[]) =>
      this.issuer.issue({ orgId: agent.orgId, agentId: agent.agentId, agentKeyThumbprint: agent.keyThumbprint, jobId: job.id, storeId, ops: list as readonly JobOperation[] });
    const token = await issue(store.storeId, ops.store);
    if (copyStore == null || ops.copyStore == null) return { token };
    return { token, copyToken: await issue(copyStore.storeId, ops.copyStore) };
  }

  private storeAccess(orgId: string, store: StoreRow): StoreAccess {
    let credentials: StoreAccess['credentials'] = null;
    if (store.credentialsSealed != null) {
      const plain = this.keys.open(Buffer.from(store.credentialsSealed), credentialsAad(orgId, store.id));
      try {
        credentials = storeCredentialsSchema.parse(JSON.parse(plain.toString('utf8')));
      } finally {
        plain.fill(0);
      }
    }
    return { id: store.id, storeId: store.storeId, url: store.url, keyProxyUrl: store.keyProxyUrl, credentials };
  }
}
