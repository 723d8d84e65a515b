import { Body, Controller, HttpCode, Inject, Param, Post, Put, Req, Res, UseFilters, type BeforeApplicationShutdown } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { and, eq } from 'drizzle-orm';
import type { z } from 'zod';
import {
  AGENT_API_PATHS, AgentApiErrorCode, agentHeartbeatRequestSchema, enrollRequestSchema, inventoryRequestSchema, jobCompleteRequestSchema,
  jobHeartbeatRequestSchema, jobTokenRequestSchema, leaseRequestSchema,
  type AgentHeartbeatResponse, type InventoryResponse, type JobCompleteResponse, type JobHeartbeatResponse, type JobTokenResponse, type LeaseResponse,
} from '@arca/contracts';
import { agents, type Database } from '@arca/db';
import { PublicRoute, RequireAgent } from '../access/require-permission.decorator.ts';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG, DATABASE } from '../database/database.tokens.ts';
import { EnrollmentService } from '../enrollment/enrollment.service.ts';
import { JobQueueService } from '../jobs/job-queue.service.ts';
import { JobWakeups } from '../jobs/job-wakeups.ts';
import { Lifecycle } from '../ops/lifecycle.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { AgentApiError, AgentApiErrorFilter } from './agent-api-error.ts';
import type { AgentApiRequest } from './agent-authenticator.service.ts';
import type { AgentIdentityRow } from './agent-directory.ts';
import { HeartbeatWriter } from './heartbeat-writer.ts';
import { JobAccessService } from './job-access.service.ts';

type AuthenticatedRequest = AgentApiRequest & { agent: AgentIdentityRow };
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
 * leasing and the job calls (heartbeat, token refresh, completion). Every route but enrollment is
 * authenticated by the guard (RequireAgent: credential + proof of possession); errors answer
 * `{ error: { code, message } }` with the agent API's codes.
 */
@Controller()
@UseFilters(AgentApiErrorFilter)
export class AgentApiController implements BeforeApplicationShutdown {
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
    @Inject(DATABASE) db: Database, @Inject(CONFIG) config: ControlPlaneConfig, metrics: MetricsService,
  ) {
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

  @Post(AGENT_API_PATHS.enroll)
  @PublicRoute()
  async enroll(@Req() request: AgentApiRequest, @Res({ passthrough: true }) reply: FastifyReply, @Body() body: unknown) {
    const { created, answer } = await this.enrollment.enroll(request, parseBody(enrollRequestSchema, body));
    void reply.status(created ? 201 : 200);
    return answer;
  }

  @Post(AGENT_API_PATHS.heartbeat)
  @HttpCode(200)
  @RequireAgent()
  async heartbeat(@Req() request: AuthenticatedRequest, @Body() body: unknown): Promise<AgentHeartbeatResponse> {
    const beat = parseBody(agentHeartbeatRequestSchema, body);
    const { agent } = request;
    this.heartbeats.record(agent.orgId, agent.agentId, beat);
    this.metrics.agentHeartbeats.inc();
    const cancelJobs = await this.queue.cancelRequested(agent.orgId, agent.agentId, beat.runningJobs);
    return { serverTime: new Date().toISOString(), heartbeatSeconds: this.config.fleet.heartbeatSeconds, cancelJobs };
  }

  @Put(AGENT_API_PATHS.inventory)
  @HttpCode(200)
  @RequireAgent()
  async inventory(@Req() request: AuthenticatedRequest, @Body() body: unknown): Promise<InventoryResponse> {
    const { resources } = parseBody(inventoryRequestSchema, body);
    const { agent } = request;
    await this.db.withTenant(agent.orgId, (tx) => tx.update(agents).set({ inventory: resources, updatedAt: new Date() }).where(and(eq(agents.orgId, agent.orgId), eq(agents.id, agent.agentId))));
    return { accepted: resources.length };
  }

  /**
   * Answers as soon as a job is ready, else empty after waitSeconds. The wake-up is armed before
   * each look at the queue, so a job queued in between is never slept through; a poll whose
   * connection went away leases nothing (the job would sit leased until its lease expired).
   */
  @Post(AGENT_API_PATHS.lease)
  @HttpCode(200)
  @RequireAgent()
  async lease(@Req() request: AuthenticatedRequest, @Res({ passthrough: true }) reply: FastifyReply, @Body() body: unknown): Promise<LeaseResponse> {
    const { slots, waitSeconds } = parseBody(leaseRequestSchema, body);
    const { agent } = request;
    const deadline = Date.now() + waitSeconds * 1000;
    // the poll ends early when its connection goes away (it must not lease a job nobody receives) or the app stops
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) gone.abort();
    };
    reply.raw.once('close', onClose);
    const ended = AbortSignal.any([gone.signal, this.stopping.signal]);
    this.metrics.agentLongPolls.inc();
    try {
      for (;;) {
        if (ended.aborted || this.lifecycle.shuttingDown) return { jobs: [] };
        const remaining = deadline - Date.now();
        const round = new AbortController();
        const stopRound = () => round.abort();
        ended.addEventListener('abort', stopRound, { once: true });
        try {
          // armed before the look, so a job queued meanwhile wakes this poll
          const woken = remaining > 0 ? this.wakeups.waitFor(agent.orgId, agent.agentId, remaining, round.signal) : null;
          const rows = await this.queue.lease(agent.orgId, agent.agentId, slots);
          if (rows.length > 0) {
            for (const row of rows) this.metrics.agentJobsLeased.inc({ kind: row.kind });
            return { jobs: await this.access.leasedJobs(agent, rows) };
          }
          if (woken == null) return { jobs: [] };
          await woken;
        } finally {
          round.abort();
          ended.removeEventListener('abort', stopRound);
        }
      }
    } finally {
      this.metrics.agentLongPolls.dec();
      reply.raw.off('close', onClose);
    }
  }

  beforeApplicationShutdown(): void {
    this.stopping.abort();
  }

  @Post('/agent/v1/jobs/:id/heartbeat')
  @HttpCode(200)
  @RequireAgent()
  async jobHeartbeat(@Req() request: AuthenticatedRequest, @Param('id') id: string, @Body() body: unknown): Promise<JobHeartbeatResponse> {
    const beat = parseBody(jobHeartbeatRequestSchema, body);
    const { agent } = request;
    const renewed = await this.queue.renew(agent.orgId, agent.agentId, jobIdOf(id), beat.attempt, beat.progress, beat.logs);
    return { leaseExpiresAt: renewed.leaseExpiresAt.toISOString(), cancelRequested: renewed.cancelRequested };
  }

  @Post('/agent/v1/jobs/:id/token')
  @HttpCode(200)
  @RequireAgent()
  async jobToken(@Req() request: AuthenticatedRequest, @Param('id') id: string, @Body() body: unknown): Promise<JobTokenResponse> {
    const { attempt } = parseBody(jobTokenRequestSchema, body);
    return this.access.refreshTokens(request.agent, jobIdOf(id), attempt);
  }

  @Post('/agent/v1/jobs/:id/complete')
  @HttpCode(200)
  @RequireAgent()
  async jobComplete(@Req() request: AuthenticatedRequest, @Param('id') id: string, @Body() body: unknown): Promise<JobCompleteResponse> {
    const report = parseBody(jobCompleteRequestSchema, body);
    const { agent } = request;
    const result = await this.queue.complete(agent.orgId, agent.agentId, jobIdOf(id), report);
    return { recorded: true, duplicate: result.duplicate };
  }
}
