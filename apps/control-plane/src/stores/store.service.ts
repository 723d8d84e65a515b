import { randomBytes, randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { and, asc, eq } from 'drizzle-orm';
import { z } from 'zod';
import { agents, stores, type Database, type StoreRow, type TenantTx } from '@arca/db';
import { AccessService } from '../access/access.service.ts';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { conflictAs, notFound, parseInput } from '../errors/input-validation.ts';
import { labelPairs, labelsFromPairs, type Labels } from '../policies/label-selector.ts';
import { JobAnnouncer } from '../scheduler/job-announcer.ts';
import { StoreCredentialsSealer } from './store-credentials.ts';
import { createStoreSchema, updateStoreSchema } from './store-input.ts';
import { StoreJobs } from './store-jobs.ts';
import type { CreateStoreInput, Store, UpdateStoreInput } from './store.types.ts';

/**
 * Stores: registration (a fresh 256-bit store ID and an `init` job on a chosen agent, docs/fleet.md
 * §1), labels, sealed credentials and immutability. Credentials are write-only: no read path
 * returns them, only `hasCredentials`; the audit log records that they changed, never their value.
 */
@Injectable()
export class StoreService {
  private readonly db: Database;
  private readonly access: AccessService;
  private readonly audit: AuditLogService;
  private readonly sealer: StoreCredentialsSealer;
  private readonly jobs: StoreJobs;
  private readonly announcer: JobAnnouncer;
  private readonly defaultKeyProxyUrl: string | null;

  constructor(@Inject(DATABASE) db: Database, access: AccessService, audit: AuditLogService, sealer: StoreCredentialsSealer, jobs: StoreJobs, announcer: JobAnnouncer, @Inject(CONFIG) config: ControlPlaneConfig) {
    this.db = db;
    this.access = access;
    this.audit = audit;
    this.sealer = sealer;
    this.jobs = jobs;
    this.announcer = announcer;
    this.defaultKeyProxyUrl = config.keyProxyUrl;
  }

  async list(principal: Principal): Promise<Store[]> {
    const rows = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(stores).where(eq(stores.orgId, principal.orgId)).orderBy(asc(stores.name)));
    return this.access.filter(principal, 'read', 'Store', rows).map(toStore);
  }

  async get(principal: Principal, id: string): Promise<Store> {
    parseInput(z.uuid('must be an ID'), id);
    const [row] = await this.db.readTenant(principal.orgId, (tx) => tx.select().from(stores).where(and(eq(stores.orgId, principal.orgId), eq(stores.id, id))));
    if (row == null || this.access.filter(principal, 'read', 'Store', [row]).length === 0) throw notFound('the store');
    return toStore(row);
  }

  async create(principal: Principal, input: CreateStoreInput, requestId: string): Promise<Store> {
    this.access.require(principal, 'create', 'Store', undefined, requestId);
    const data = parseInput(createStoreSchema, { ...stripNulls(input), labels: labelsFromPairs(input.labels) });
    const keyProxyUrl = data.keyProxyUrl ?? this.defaultKeyProxyUrl;
    if (keyProxyUrl == null) {
      const message = 'give the key proxy\'s URL, or configure ARCA_CP_KEY_PROXY_URL as the default';
      throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: keyProxyUrl: ${message}`, { fields: [{ path: 'keyProxyUrl', message }] });
    }
    this.access.require(principal, 'create', 'Store', [{ labels: data.labels }], requestId);
    return this.announcer.run(principal.orgId, async (tx) => {
      const [agent] = await tx.select({ id: agents.id, status: agents.status }).from(agents).where(and(eq(agents.orgId, principal.orgId), eq(agents.id, data.initAgentId)));
      if (agent == null || agent.status !== 'active') {
        const message = agent == null ? 'no such agent in your organization: enroll one first' : `the agent is ${agent.status}: choose an active agent`;
        throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: initAgentId: ${message}`, { fields: [{ path: 'initAgentId', message }] });
      }
      const id = randomUUID();
      const now = new Date();
      const [row] = await conflictAs(`a store named "${data.name}" already exists`, () => tx.insert(stores).values({
        orgId: principal.orgId, id, name: data.name, storeId: randomBytes(32).toString('hex'), kind: data.kind, url: data.url,
        credentialsSealed: data.credentials == null ? null : this.sealer.seal(principal.orgId, id, data.credentials),
        keyProxyUrl, immutable: data.immutable, labels: data.labels, status: 'initializing', createdAt: now, updatedAt: now,
      }).returning());
      const jobId = await this.jobs.enqueueInit(tx, principal, row!, data.initAgentId);
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'store.created', target: `store:${id}`,
        payload: { store: auditView(row!), initAgentId: data.initAgentId, initJobId: jobId, ...authOf(principal) }, requestId,
      });
      return toStore(row!);
    });
  }

  async update(principal: Principal, input: UpdateStoreInput, requestId: string): Promise<Store> {
    this.access.require(principal, 'update', 'Store', undefined, requestId);
    const data = parseInput(updateStoreSchema, { ...stripNulls(input), labels: labelsFromPairs(input.labels) });
    return this.db.withTenant(principal.orgId, async (tx) => {
      const existing = await this.lock(tx, principal.orgId, data.id);
      const labels = data.labels ?? (existing.labels as Labels);
      // allowed on the store as it is and as it will be: no relabelling out of one's perimeter
      this.access.require(principal, 'update', 'Store', [existing, { labels }], requestId);
      if (data.immutable === false && existing.immutable) {
        throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'an immutable store cannot be made mutable again (its snapshots were promised to be kept): create a new store instead', {
          fields: [{ path: 'immutable', message: 'cannot be switched off' }],
        });
      }
      if (data.credentials != null && existing.kind !== 's3') {
        throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, 'an fs store takes no credentials', { fields: [{ path: 'credentials', message: 'fs stores take no credentials' }] });
      }
      const credentialsSealed = data.clearCredentials === true ? null : data.credentials != null ? this.sealer.seal(principal.orgId, existing.id, data.credentials) : existing.credentialsSealed;
      const [row] = await tx.update(stores).set({ labels, immutable: data.immutable ?? existing.immutable, credentialsSealed, updatedAt: new Date() })
        .where(and(eq(stores.orgId, principal.orgId), eq(stores.id, data.id))).returning();
      const credentials = data.clearCredentials === true ? 'cleared' : data.credentials != null ? 'rotated' : 'unchanged';
      await this.audit.append(tx, principal.orgId, {
        actor: principal.actor, action: 'store.updated', target: `store:${data.id}`,
        payload: { before: auditView(existing), after: auditView(row!), credentials, ...authOf(principal) }, requestId,
      });
      return toStore(row!);
    });
  }

  /** The init job's outcome decides the store's status (called from job completion events). */
  async recordInitOutcome(orgId: string, storeRowId: string, jobId: string, outcome: 'ready' | 'failed'): Promise<void> {
    await this.db.withTenant(orgId, async (tx) => {
      const [row] = await tx.update(stores).set({ status: outcome, updatedAt: new Date() })
        .where(and(eq(stores.orgId, orgId), eq(stores.id, storeRowId), eq(stores.status, 'initializing'))).returning({ id: stores.id });
      if (row == null) return;
      await this.audit.append(tx, orgId, { actor: 'system', action: outcome === 'ready' ? 'store.ready' : 'store.init_failed', target: `store:${storeRowId}`, payload: { jobId } });
    });
  }

  private async lock(tx: TenantTx, orgId: string, id: string): Promise<StoreRow> {
    const [row] = await tx.select().from(stores).where(and(eq(stores.orgId, orgId), eq(stores.id, id))).for('update');
    if (row == null) throw notFound('the store');
    return row;
  }
}

function stripNulls<T extends object>(input: T): T {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v != null)) as T;
}

/** What the audit log keeps of a store: everything but the credentials (only whether there are some). */
function auditView(row: StoreRow): Record<string, unknown> {
  return {
    name: row.name, storeId: row.storeId, kind: row.kind, url: row.url, keyProxyUrl: row.keyProxyUrl, immutable: row.immutable, labels: row.labels,
    status: row.status, hasCredentials: row.credentialsSealed != null,
  };
}

export function toStore(row: StoreRow): Store {
  return {
    id: row.id, name: row.name, kind: row.kind, url: row.url, storeId: row.storeId, keyProxyUrl: row.keyProxyUrl, immutable: row.immutable,
    labels: labelPairs((row.labels ?? {}) as Labels), status: row.status, hasCredentials: row.credentialsSealed != null, createdAt: row.createdAt, updatedAt: row.updatedAt,
  };
}
