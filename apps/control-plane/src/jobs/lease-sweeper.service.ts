import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { JobQueueService } from './job-queue.service.ts';

export const SWEEPER_LOGGER = Symbol.for('arca.control-plane.sweeper-logger');

/**
 * Runs the lease sweep on every replica every ARCA_CP_LEASE_SWEEP_SECONDS (docs/fleet.md §4).
 * Replicas never contend for one job (SKIP LOCKED), so more replicas only sweep sooner. Started
 * after the server listens, stopped on shutdown; a sweep never overlaps the previous one.
 */
@Injectable()
export class LeaseSweeper implements OnApplicationShutdown {
  private readonly queue: JobQueueService;
  private readonly config: ControlPlaneConfig;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(queue: JobQueueService, @Inject(CONFIG) config: ControlPlaneConfig, @Inject(SWEEPER_LOGGER) logger: Logger) {
    this.queue = queue;
    this.config = config;
    this.logger = logger;
  }

  start(): void {
    if (this.timer != null) return;
    this.timer = setInterval(() => {
      this.running ??= this.sweepOnce().finally(() => { this.running = null; });
    }, this.config.fleet.sweepMs);
    this.timer.unref();
  }

  async sweepOnce(): Promise<void> {
    try {
      const n = await this.queue.expireLeases();
      if (n > 0) this.logger.info({ jobs: n }, 'expired job leases handled');
    } catch (err) {
      this.logger.error({ err }, 'lease sweep failed; retrying at the next interval');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer != null) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
