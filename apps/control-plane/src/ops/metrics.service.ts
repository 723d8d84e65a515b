import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of one process (GET /metrics). A registry per instance keeps tests isolated. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'arca_cp_http_requests_total',
    help: 'HTTP requests by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'arca_cp_http_request_duration_seconds',
    help: 'HTTP request duration by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly auditAppends = new Counter({
    name: 'arca_cp_audit_events_appended_total',
    help: 'Audit events appended, by action',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'arca_cp_auth_failures_total',
    help: 'Rejected credentials, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly permissionDenials = new Counter({
    name: 'arca_cp_permission_denied_total',
    help: 'Operations refused by RBAC, by subject',
    labelNames: ['subject'] as const,
    registers: [this.registry],
  });

  // the agent API (docs/fleet.md §3): heartbeats are counted, not logged or audited one by one
  readonly agentHeartbeats = new Counter({
    name: 'arca_cp_agent_heartbeats_total',
    help: 'Agent heartbeats accepted',
    registers: [this.registry],
  });
  readonly agentHeartbeatWrites = new Counter({
    name: 'arca_cp_agent_heartbeat_rows_written_total',
    help: 'Agent rows updated by the batched heartbeat writer, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly agentJobsLeased = new Counter({
    name: 'arca_cp_agent_jobs_leased_total',
    help: 'Jobs handed to agents, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly agentLongPolls = new Gauge({
    name: 'arca_cp_agent_long_polls',
    help: 'Lease long polls waiting on this replica',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'arca_cp_' });
  }
}
