import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { and, eq } from 'drizzle-orm';
import type { z } from 'zod';
import {
  AGENT_API_PATHS, AGENT_API_PREFIX, AgentApiErrorCode, agentHeartbeatRequestSchema, enrollRequestSchema, inventoryRequestSchema, jobCompleteRequestSchema,
  jobHeartbeatRequestSchema, jobTokenRequestSchema, leaseRequestSchema,
  type AgentHeartbeatResponse, type InventoryResponse, type JobCompleteResponse, type JobHeartbeatResponse, type JobTokenResponse, type LeaseResponse,
} from '@arca/contracts';
import { agents, type Database } from '@arca/db';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { EnrollmentService } from '../enrollment/enrollment.service.ts';
import { JobQueueService } from '../jobs/job-queue.service.ts';
import { JobWakeups } from '../jobs/job-wakeups.ts';
import { Lifecycle } from '../ops/lifecycle.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { AgentApiError } from './agent-api-error.ts';
import { AgentAuthenticator, type AgentApiRequest } from './agent-authenticator.service.ts';
import type { AgentIdentityRow } from './agent-directory.ts';
import { HeartbeatWriter } from './heartbeat-writer.ts';
import { JobAccessService } from './job-access.service.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const problems = result.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
  throw new AgentApiError(AgentApiErrorCode.BadRequest, `the request body is not valid: ${problems.join('; ')}`);
}

function jobIdOf(id: string): string {
  if (!UUID.test(id)) throw new AgentApiError(AgentApiErrorCode.NotFound, 'no such job');
  return id;
}

/**
 * The agent API, `/agent/v1` (docs/fleet.md §2-4): enrollment, heartbeats, inventory, long-poll
 * leasing and the job calls (heartbeat, token refresh, completion).
 *
 * Registered as plain Fastify routes, not through Nest's router: a fleet's heartbeats are the
 * busiest calls of the control plane (2,000/s is the target on 2 cores, bench:fleet), and Nest's
 * per-request pipeline (guards, interceptors, rxjs, the response controller) cost more than the
 * proof check itself. What Nest's guard gives the other routes is done here by construction: the
 * route table below puts AgentAuthenticator (credential + proof of possession) in front of every
 * handler but enrollment, which checks its own proof. Errors answer `{ error: { code, message } }`
 * with the agent API's codes (agentApiRouteOptions, which also caps bodies at 1 MiB).
 */
@Injectable()
export class AgentApiRoutes implements BeforeApplicationShutdown {
  private readonly authenticator: AgentAuthenticator;
  private readonly enrollment: EnrollmentService;
  private readonly heartbeats: HeartbeatWriter;
  private readonly queue: JobQueueService;
  private readonly wakeups: JobWakeups;
  private readonly access: JobAccessService;
  private readonly lifecycle: Lifecycle;
  private readonly db: Database;
  private readonly config: ControlPlaneConfig;
  private readonly metrics: MetricsService;
  /** aborted when the app stops: waiting long polls answer at once, so shutdown is not held up for up to 30 s */
  private readonly stopping = new AbortController();

  constructor(
    enrollment: EnrollmentService, heartbeats: HeartbeatWriter, queue: JobQueueService, wakeups: JobWakeups, access: JobAccessService, lifecycle: Lifecycle,
    @Inject(DATABASE) db: Database, @Inject(CONFIG) config: ControlPlaneConfig, metrics: MetricsService, authenticator: AgentAuthenticator,
  ) {
    this.authenticator = authenticator;
    this.metrics = metrics;
    this.enrollment = enrollment;
    this.heartbeats = heartbeats;
    this.queue = queue;
    this.wakeups = wakeups;
    this.access = access;
    this.lifecycle = lifecycle;
    this.db = db;
    this.config = config;
  }

  register(fastify: FastifyInstance): void {
    type Handler = (agent: AgentIdentityRow, request: AgentApiRequest, reply: FastifyReply) => Promise<unknown>;
    const authenticated = (handler: Handler) => async (request: AgentApiRequest, reply: FastifyReply) => handler(await this.authenticator.authenticate(request), request, reply);
    const idOf = (request: AgentApiRequest) => jobIdOf((request.params as { id?: string }).id ?? '');
    fastify.post(AGENT_API_PATHS.enroll, (request, reply) => this.enroll(request, reply, request.body));
    fastify.post(AGENT_API_PATHS.heartbeat, authenticated((agent, request) => this.heartbeat(agent, request.body)));
    fastify.put(AGENT_API_PATHS.inventory, authenticated((agent, request) => this.inventory(agent, request.body)));
    fastify.post(AGENT_API_PATHS.lease, authenticated((agent, request, reply) => this.lease(agent, reply, request.body)));
    fastify.post(`${AGENT_API_PREFIX}/jobs/:id/heartbeat`, authenticated((agent, request) => this.jobHeartbeat(agent, idOf(request), request.body)));
    fastify.post(`${AGENT_API_PREFIX}/jobs/:id/token`, authenticated((agent, request) => this.jobToken(agent, idOf(request), request.body)));
    fastify.post(`${AGENT_API_PREFIX}/jobs/:id/complete`, authenticated((agent, request) => this.jobComplete(agent, idOf(request), request.body)));
  }

  async enroll(request: AgentApiRequest, reply: FastifyReply, body: unknown) {
    const { created, answer } = await this.enrollment.enroll(request, parseBody(enrollRequestSchema, body));
    void reply.status(created ? 201 : 200);
    return answer;
  }

  async heartbeat(agent: AgentIdentityRow, body: unknown): Promise<AgentHeartbeatResponse> {
    const beat = parseBody(agentHeartbeatRequestSchema, body);
    this.heartbeats.record(agent.orgId, agent.agentId, beat);
    this.metrics.agentHeartbeats.inc();
    const cancelJobs = await this.queue.cancelRequested(agent.orgId, agent.agentId, beat.runningJobs);
    return { serverTime: new Date().toISOString(), heartbeatSeconds: this.config.fleet.heartbeatSeconds, cancelJobs };
  }

  async inventory(agent: AgentIdentityRow, body: unknown): Promise<InventoryResponse> {
    const { resources } = parseBody(inventoryRequestSchema, body);
    await this.db.withTenant(agent.orgId, (tx) => tx.update(agents).set({ inventory: resources, updatedAt: new Date() }).where(and(eq(agents.orgId, agent.orgId), eq(agents.id, agent.agentId))));
    return { accepted: resources.length };
  }

  /**
   * Answers as soon as a job is ready, else empty after waitSeconds. The wake-up is armed before
   * each look at the queue, so a job queued in between is never slept through; a poll whose
   * connection went away leases nothing (the job would sit leased until its lease expired).
   */
  async lease(agent: AgentIdentityRow, reply: FastifyReply, body: unknown): Promise<LeaseResponse> {
    const { slots, waitSeconds } = parseBody(leaseRequestSchema, body);
    const deadline = Date.now() + waitSeconds * 1000;
    // the poll ends early when its connection goes away (it must not lease a job nobody receives) or
    // the app stops; plain listeners, not AbortSignal.any: a poll is the most frequent object of a
    // connected fleet, and signals derived from the long-lived stop signal are costly to collect
    const ended = new AbortController();
    const end = () => ended.abort();
    const onClose = () => {
      if (!reply.raw.writableFinished) ended.abort();
    };
    reply.raw.once('close', onClose);
    this.stopping.signal.addEventListener('abort', end, { once: true });
    this.metrics.agentLongPolls.inc();
    try {
      for (;;) {
        if (ended.signal.aborted || this.stopping.signal.aborted || this.lifecycle.shuttingDown) return { jobs: [] };
        const remaining = deadline - Date.now();
        // armed before the look, so a job queued meanwhile wakes this poll
        const wakeup = remaining > 0 ? this.wakeups.arm(agent.orgId, agent.agentId, remaining) : null;
        const stopWaiting = () => wakeup?.cancel();
        ended.signal.addEventListener('abort', stopWaiting, { once: true });
        try {
          const rows = await this.queue.lease(agent.orgId, agent.agentId, slots);
          if (rows.length > 0) {
            for (const row of rows) this.metrics.agentJobsLeased.inc({ kind: row.kind });
            return { jobs: await this.access.leasedJobs(agent, rows) };
          }
          if (wakeup == null) return { jobs: [] };
          await wakeup.woken;
        } finally {
          wakeup?.cancel();
          ended.signal.removeEventListener('abort', stopWaiting);
        }
      }
    } finally {
      this.metrics.agentLongPolls.dec();
      this.stopping.signal.removeEventListener('abort', end);
      reply.raw.off('close', onClose);
    }
  }

  beforeApplicationShutdown(): void {
    this.stopping.abort();
  }

  async jobHeartbeat(agent: AgentIdentityRow, id: string, body: unknown): Promise<JobHeartbeatResponse> {
    const beat = parseBody(jobHeartbeatRequestSchema, body);
    const renewed = await this.queue.renew(agent.orgId, agent.agentId, id, beat.attempt, beat.progress, beat.logs);
    return { leaseExpiresAt: renewed.leaseExpiresAt.toISOString(), cancelRequested: renewed.cancelRequested };
  }

  async jobToken(agent: AgentIdentityRow, id: string, body: unknown): Promise<JobTokenResponse> {
    const { attempt } = parseBody(jobTokenRequestSchema, body);
    return this.access.refreshTokens(agent, id, attempt);
  }

  async jobComplete(agent: AgentIdentityRow, id: string, body: unknown): Promise<JobCompleteResponse> {
    const report = parseBody(jobCompleteRequestSchema, body);
    const result = await this.queue.complete(agent.orgId, agent.agentId, id, report);
    return { recorded: true, duplicate: result.duplicate };
  }
}
