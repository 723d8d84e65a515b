import { Controller, Get, Header, Inject, Res, UseFilters } from '@nestjs/common';
import { HttpErrorFilter } from './http-error.filter.ts';
import type { FastifyReply } from 'fastify';
import { migrationStatus, type Database } from '@arca/db';
import { PublicRoute } from '../access/require-permission.decorator.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { Lifecycle } from './lifecycle.ts';
import { MetricsService } from './metrics.service.ts';

/**
 * Probes for orchestrators. /healthz: the process serves requests (liveness; no dependencies, so
 * a database outage does not get every replica restarted). /readyz: the database answers, its
 * migrations are exactly this build's, and the process is not shutting down.
 */
@Controller()
@UseFilters(HttpErrorFilter)
export class HealthController {
  private readonly db: Database;
  private readonly lifecycle: Lifecycle;
  private readonly metrics: MetricsService;

  constructor(@Inject(DATABASE) db: Database, lifecycle: Lifecycle, metrics: MetricsService) {
    this.db = db;
    this.lifecycle = lifecycle;
    this.metrics = metrics;
  }

  @Get('/healthz')
  @PublicRoute()
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('/readyz')
  @PublicRoute()
  async readyz(@Res({ passthrough: true }) reply: FastifyReply): Promise<{ status: 'ready' | 'unavailable'; reason?: string; migrations?: unknown }> {
    if (this.lifecycle.shuttingDown) {
      void reply.status(503);
      return { status: 'unavailable', reason: 'shutting down' };
    }
    try {
      const status = await migrationStatus(this.db.sql);
      const migrations = { applied: status.applied.length, pending: status.pending, checksumMismatch: status.checksumMismatch, unknown: status.unknown };
      if (!status.current) {
        void reply.status(503);
        const reason = status.checksumMismatch.length > 0 ? 'applied migrations differ from this build' : 'migrations pending: run the migrate command';
        return { status: 'unavailable', reason, migrations };
      }
      return { status: 'ready', migrations };
    } catch (err) {
      void reply.status(503);
      return { status: 'unavailable', reason: `database unreachable: ${(err as Error).message}` };
    }
  }

  @Get('/metrics')
  @PublicRoute()
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  async metricsText(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
