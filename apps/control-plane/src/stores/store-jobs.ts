import { Injectable } from '@nestjs/common';
import type { StoreRow, TenantTx } from '@arca/db';
import type { Principal } from '../auth/principal.ts';
import { SchedulerJobs } from '../scheduler/scheduler-jobs.ts';

/** The jobs a store's registration queues (its `init` on the chosen agent, docs/fleet.md §1). */
@Injectable()
export class StoreJobs {
  private readonly writer: SchedulerJobs;

  constructor(writer: SchedulerJobs) {
    this.writer = writer;
  }

  async enqueueInit(tx: TenantTx, principal: Principal, store: StoreRow, agentId: string): Promise<string> {
    const id = await this.writer.enqueue(tx, principal.orgId, { kind: 'init', agentId, storeId: store.id, spec: {}, requestedBy: principal.actor }, `store "${store.name}" registered by ${principal.actor}`);
    return id!;
  }
}
