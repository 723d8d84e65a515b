import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AgentIdentity } from '@arca/crypto';
import {
  AgentApiErrorCode,
  inventoryRequestSchema,
  JOB_LOGS_PER_HEARTBEAT,
  type InventoryResource,
  type JobCompleteRequest,
  type JobLogLine,
  type LeasedJob,
  type Progress,
} from '@arca/contracts';
import { decodeJobToken } from '@arca/engine';
import { backoffDelay, DEFAULT_BACKOFF, sleep, type BackoffPolicy } from './backoff.ts';
import { ControlPlaneRequestError, type ControlPlaneClient } from './control-plane-client.ts';
import { INVENTORY_MAX_RESOURCES, mergeInventory, type InventoryDiscovery } from './inventory-discovery.ts';
import type { OpenedStore } from './job-store-access.ts';
import { runJob as defaultRunJob, type JobContext, type JobReport } from './job-runners.ts';
import type { JsonLog } from './json-log.ts';
import { ResultSpool } from './result-spool.ts';

/**
 * `arca agent run` (docs/fleet.md §4, §7): heartbeats, inventory, long-poll leasing while slots are
 * free, one supervisor per job (job heartbeats with progress and logs, token refresh,
 * cancellation), results spooled before they are sent, and a graceful stop.
 */
export interface AgentDaemonOptions {
  client: ControlPlaneClient;
  identity: AgentIdentity;
  dataDir: string;
  /** jobs at once (default 2) */
  concurrency?: number;
  /** on stop: how long running jobs may finish before they are cancelled (default 30) */
  graceSeconds?: number;
  heartbeatSeconds: number;
  leaseWaitSeconds: number;
  /** default 15 */
  jobHeartbeatSeconds?: number;
  /** refresh a job token this long before it expires (default 120 s, at most half its lifetime) */
  tokenRefreshMarginSeconds?: number;
  /** after the jobs ended on stop: how long to keep trying to deliver results (default 10 s); the rest stays spooled */
  resultDeliverySeconds?: number;
  backoff?: BackoffPolicy;
  log: JsonLog;
  version: string;
  storeAccess: { allowHttp: boolean; retryBudgetMs?: number };
  /** what is reported besides DIR/inventory.json (`--discover-postgres`, `--discover-mounts`); none: inventory.json alone */
  discovery?: InventoryDiscovery;
  /** tests: replace the engine-backed runners */
  runJob?: (ctx: JobContext) => Promise<JobReport>;
}

interface RunningJob {
  job: LeasedJob;
  controller: AbortController;
  /** ends the job's heartbeats and token refreshes */
  finished: AbortController;
  tokens: { token: string; copyToken?: string };
  stores: { opened: OpenedStore; which: 'store' | 'copyStore' }[];
  progress: Progress | undefined;
  logs: JobLogLine[];
  lost: boolean;
  reason: 'cancelled' | 'shutdown' | undefined;
  done: Promise<void>;
}

/** Kinds that stop at their AbortSignal themselves (and save what they stored). */
const SIGNAL_AWARE = new Set(['backup', 'replicate']);
const FINAL_RESULT_CODES = new Set<string>([AgentApiErrorCode.LeaseLost, AgentApiErrorCode.NotFound, AgentApiErrorCode.BadRequest, AgentApiErrorCode.TooLarge]);

export class AgentDaemon {
  private readonly o: Required<Omit<AgentDaemonOptions, 'runJob' | 'discovery'>> & { runJob: (ctx: JobContext) => Promise<JobReport>; discovery?: InventoryDiscovery };
  private readonly spool: ResultSpool;
  private readonly jobs = new Map<string, RunningJob>();
  private readonly sends = new Map<string, Promise<void>>();
  /** stop leasing */
  private readonly stopping = new AbortController();
  /** stop heartbeats and result delivery (the very end) */
  private readonly ending = new AbortController();
  private slotFreed: (() => void) | undefined;
  private heartbeatSeconds: number;
  private lastInventory: string | undefined;
  private fatal: ControlPlaneRequestError | undefined;
  private readonly started = Date.now();

  constructor(options: AgentDaemonOptions) {
    this.o = {
      concurrency: 2,
      graceSeconds: 30,
      jobHeartbeatSeconds: 15,
      tokenRefreshMarginSeconds: 120,
      resultDeliverySeconds: 10,
      backoff: DEFAULT_BACKOFF,
      runJob: defaultRunJob,
      ...options,
    };
    this.spool = new ResultSpool(path.join(options.dataDir, 'spool'));
    this.heartbeatSeconds = options.heartbeatSeconds;
  }

  /** Ask the daemon to stop (SIGTERM): no more leases, running jobs get the grace period. */
  stop(): void {
    if (this.stopping.signal.aborted) return;
    this.o.log.info('stopping', { runningJobs: [...this.jobs.keys()], graceSeconds: this.o.graceSeconds });
    this.stopping.abort();
    this.slotFreed?.();
  }

  get runningJobs(): string[] {
    return [...this.jobs.keys()];
  }

  /** Runs until stop(); resolves once jobs have ended and results are delivered or spooled. Rejects when the agent was removed. */
  async run(): Promise<void> {
    this.o.log.info('agent started', { url: this.o.client.url, concurrency: this.o.concurrency, version: this.o.version });
    for (const spooled of await this.spool.list((file, why) => this.o.log.error('unreadable spooled result left in place', { file, why }))) {
      this.o.log.info('re-sending a spooled result', { job: spooled.jobId, outcome: spooled.request.outcome });
      void this.deliver(spooled.jobId, spooled.request);
    }
    const heartbeats = this.heartbeatLoop();
    await this.leaseLoop();

    // stopping: let running jobs finish within the grace period, then cancel them
    const running = () => Promise.all([...this.jobs.values()].map((j) => j.done));
    if (this.jobs.size > 0) {
      const graceOver = new AbortController();
      const inTime = await Promise.race([running().then(() => true), sleep(this.o.graceSeconds * 1000, graceOver.signal).then(() => false)]);
      graceOver.abort();
      if (!inTime) {
        for (const j of this.jobs.values()) this.cancel(j, 'shutdown');
        await running();
      }
    }
    // results: a few seconds to deliver what is left; whatever is not acknowledged stays spooled
    if (this.sends.size > 0) {
      const deadline = new AbortController();
      await Promise.race([Promise.all([...this.sends.values()]), sleep(this.o.resultDeliverySeconds * 1000, deadline.signal)]);
      deadline.abort();
    }
    this.ending.abort();
    await Promise.all([heartbeats, ...this.sends.values()]);
    this.o.log.info('agent stopped', { spooled: (await this.spool.list()).length });
    if (this.fatal) throw this.fatal;
  }

  // ---- agent heartbeat and inventory ----

  private async heartbeatLoop(): Promise<void> {
    let failures = 0;
    while (!this.ending.signal.aborted) {
      try {
        const answer = await this.o.client.heartbeat(await this.heartbeatBody(), { signal: this.ending.signal, maxAttempts: 1 });
        failures = 0;
        this.heartbeatSeconds = answer.heartbeatSeconds;
        for (const id of answer.cancelJobs) {
          const j = this.jobs.get(id);
          if (j) this.cancel(j, 'cancelled');
        }
        await this.reportInventory();
      } catch (err) {
        if (this.ending.signal.aborted) break;
        failures++;
        this.logCallFailure('heartbeat failed', err, failures);
        if (err instanceof ControlPlaneRequestError && err.code === AgentApiErrorCode.Removed) {
          // removed for good: stop; a disabled agent keeps heartbeating (it may be enabled again)
          this.fatal = err;
          this.stop();
          for (const j of this.jobs.values()) this.cancel(j, 'shutdown');
          break;
        }
      }
      const delay = failures > 0 ? Math.min(backoffDelay(failures, this.o.backoff), this.heartbeatSeconds * 1000) : this.heartbeatSeconds * 1000;
      await sleep(delay, this.ending.signal);
    }
  }

  private async heartbeatBody() {
    let freeBytes = 0;
    try {
      const st = await statfs(this.o.dataDir);
      freeBytes = Number(st.bavail) * Number(st.bsize);
    } catch {
      // unknown
    }
    const [l1, l5, l15] = os.loadavg();
    return {
      version: this.o.version,
      hostname: os.hostname(),
      os: os.platform(),
      arch: os.arch(),
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      load: [l1 ?? 0, l5 ?? 0, l15 ?? 0] as [number, number, number],
      freeBytes: Math.max(0, Math.floor(freeBytes)),
      runningJobs: [...this.jobs.keys()],
    };
  }

  /**
   * What this agent can protect: DIR/inventory.json (`{ resources: [...] }`) and what discovery
   * found, deduplicated and sorted, sent when it changes.
   */
  private async reportInventory(): Promise<void> {
    let explicit: InventoryResource[] = [];
    try {
      explicit = inventoryRequestSchema.parse(JSON.parse(await readFile(path.join(this.o.dataDir, 'inventory.json'), 'utf8'))).resources;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.o.log.warn('inventory.json is not valid: reporting the discovered resources only (if any)', { why: err instanceof Error ? err.message.slice(0, 200) : 'invalid' });
      }
    }
    const discovered = this.o.discovery ? await this.o.discovery.resources() : [];
    const { resources, dropped } = mergeInventory(explicit, discovered);
    const text = JSON.stringify(resources);
    if (text === this.lastInventory) return;
    if (dropped > 0) this.o.log.warn(`the inventory holds at most ${INVENTORY_MAX_RESOURCES} resources: some discovered ones are not reported`, { dropped });
    await this.o.client.inventory({ resources }, { signal: this.ending.signal, maxAttempts: 1 });
    this.lastInventory = text;
    this.o.log.info('inventory reported', { resources: resources.length, ...(this.o.discovery ? { discovered: discovered.length } : {}) });
  }

  // ---- leasing ----

  private async leaseLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      const free = this.o.concurrency - this.jobs.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        this.slotFreed = undefined;
        continue;
      }
      try {
        const { jobs } = await this.o.client.lease(free, this.o.leaseWaitSeconds, { signal: this.stopping.signal, maxAttempts: 1 });
        failures = 0;
        for (const job of jobs) {
          if (this.jobs.has(job.id)) continue;
          this.start(job);
        }
      } catch (err) {
        if (this.stopping.signal.aborted) break;
        failures++;
        this.logCallFailure('leasing failed', err, failures);
        await sleep(backoffDelay(failures, this.o.backoff), this.stopping.signal);
      }
    }
  }

  // ---- jobs ----

  private start(job: LeasedJob): void {
    const rj: RunningJob = {
      job,
      controller: new AbortController(),
      finished: new AbortController(),
      tokens: { token: job.token, ...(job.copyToken ? { copyToken: job.copyToken } : {}) },
      stores: [],
      progress: undefined,
      logs: [],
      lost: false,
      reason: undefined,
      done: Promise.resolve(),
    };
    this.jobs.set(job.id, rj);
    this.o.log.addSecret(job.token);
    if (job.copyToken) this.o.log.addSecret(job.copyToken);
    this.o.log.info('job leased', { job: job.id, kind: job.kind, attempt: job.attempt });
    rj.done = this.supervise(rj).catch((err: unknown) => {
      // the result could not even be spooled (disk full?): the lease expires and the job is retried
      this.o.log.error('job result lost: it could not be spooled', { job: job.id, message: err instanceof Error ? err.message : String(err) });
    }).finally(() => {
      this.jobs.delete(job.id);
      this.o.log.removeSecret(rj.tokens.token);
      if (rj.tokens.copyToken) this.o.log.removeSecret(rj.tokens.copyToken);
      this.slotFreed?.();
    });
  }

  private cancel(rj: RunningJob, reason: 'cancelled' | 'shutdown'): void {
    if (rj.controller.signal.aborted) return;
    rj.reason = reason;
    this.o.log.info(reason === 'cancelled' ? 'job cancelled by the control plane' : 'job cancelled: the agent is stopping', { job: rj.job.id });
    rj.controller.abort();
    // operations without a stop point of their own end at their next key request
    if (!SIGNAL_AWARE.has(rj.job.kind)) for (const s of rj.stores) void s.opened.close().catch(() => undefined);
  }

  private async supervise(rj: RunningJob): Promise<void> {
    const { job } = rj;
    const heartbeats = this.jobHeartbeatLoop(rj);
    const refreshes = this.tokenRefreshLoop(rj);
    let report: JobReport;
    try {
      report = await this.o.runJob({
        job,
        identity: this.o.identity,
        signal: rj.controller.signal,
        scratchDir: path.join(this.o.dataDir, 'scratch'),
        storeAccess: this.o.storeAccess,
        tokens: () => rj.tokens,
        onStoreOpened: (opened, which) => {
          rj.stores.push({ opened, which });
          if (rj.controller.signal.aborted && !SIGNAL_AWARE.has(job.kind)) void opened.close().catch(() => undefined);
        },
        progress: (p) => (rj.progress = p),
        log: (level, message, local) => {
          (level === 'info' ? this.o.log.info : level === 'warn' ? this.o.log.warn : this.o.log.error).call(this.o.log, message, { job: job.id, ...local });
          if (rj.logs.length < 1000) rj.logs.push({ time: new Date().toISOString(), level, message: message.slice(0, 4000) });
        },
      });
    } finally {
      for (const s of rj.stores) await s.opened.close().catch(() => undefined);
      rj.finished.abort();
      await Promise.all([heartbeats, refreshes]);
    }
    if (rj.lost) {
      this.o.log.warn('job abandoned: its lease was lost (the control plane gave it to another attempt)', { job: job.id, outcome: report.outcome });
      return;
    }
    if (report.outcome !== 'cancelled' && rj.controller.signal.aborted) report = { outcome: 'cancelled' };
    const request: JobCompleteRequest = { attempt: job.attempt, ...report };
    // spooled first, before any call that may hang on an unresponsive control plane (up to the
    // request timeout): a crash in that time must not lose the result
    await this.spool.write(job.id, request);
    this.o.log.info('job finished', { job: job.id, kind: job.kind, outcome: report.outcome, ...(report.error ? { error: report.error.code } : {}) });
    // the last log lines travel with a final heartbeat (best effort: completion does not carry logs)
    if (rj.logs.length > 0) await this.sendJobHeartbeat(rj, 1).catch(() => undefined);
    // The slot stays taken until the control plane has the result (or could not be reached):
    // freeing it at once sent the next lease together with this completion, and the control plane
    // could lease the next job before recording this one's end — its job history then showed more
    // of this agent's jobs active at once than --concurrency. Not while stopping: no lease follows.
    await untilDoneOrAborted(this.deliver(job.id, request), this.stopping.signal);
  }

  private async sendJobHeartbeat(rj: RunningJob, maxAttempts: number): Promise<void> {
    const logs = rj.logs.splice(0, JOB_LOGS_PER_HEARTBEAT);
    try {
      const answer = await this.o.client.jobHeartbeat(
        rj.job.id,
        { attempt: rj.job.attempt, ...(rj.progress ? { progress: rj.progress } : {}), ...(logs.length > 0 ? { logs } : {}) },
        { signal: this.ending.signal, maxAttempts },
      );
      if (answer.cancelRequested) this.cancel(rj, 'cancelled');
    } catch (err) {
      if (err instanceof ControlPlaneRequestError && err.code === AgentApiErrorCode.LeaseLost) {
        rj.lost = true;
        rj.controller.abort();
        if (!SIGNAL_AWARE.has(rj.job.kind)) for (const s of rj.stores) void s.opened.close().catch(() => undefined);
      } else {
        rj.logs.unshift(...logs.slice(0, Math.max(0, 1000 - rj.logs.length)));
      }
      throw err;
    }
  }

  private async jobHeartbeatLoop(rj: RunningJob): Promise<void> {
    // the first heartbeat at once: it moves the job from leased to running
    let failures = 0;
    while (!rj.finished.signal.aborted && !rj.lost) {
      try {
        await this.sendJobHeartbeat(rj, 1);
        failures = 0;
      } catch (err) {
        if (rj.lost || this.ending.signal.aborted) break;
        failures++;
        this.logCallFailure('job heartbeat failed', err, failures, { job: rj.job.id });
      }
      const delay = failures > 0 ? Math.min(backoffDelay(failures, this.o.backoff), this.o.jobHeartbeatSeconds * 1000) : this.o.jobHeartbeatSeconds * 1000;
      await sleep(delay, rj.finished.signal);
    }
  }

  /** Ask for fresh job tokens before the current ones expire, and hand them to the open stores. */
  private async tokenRefreshLoop(rj: RunningJob): Promise<void> {
    let failures = 0;
    while (!rj.finished.signal.aborted && !rj.lost) {
      const exp = decodeJobToken(rj.tokens.token).exp;
      if (exp === undefined) return;
      const lifetimeMs = exp * 1000 - Date.now();
      const margin = Math.min(this.o.tokenRefreshMarginSeconds * 1000, Math.max(0, lifetimeMs / 2));
      const wait = failures > 0 ? backoffDelay(failures, this.o.backoff) : lifetimeMs - margin;
      await sleep(wait, rj.finished.signal);
      if (rj.finished.signal.aborted) return;
      try {
        const fresh = await this.o.client.jobToken(rj.job.id, rj.job.attempt, { signal: rj.finished.signal, maxAttempts: 1 });
        failures = 0;
        this.o.log.addSecret(fresh.token);
        if (fresh.copyToken) this.o.log.addSecret(fresh.copyToken);
        rj.tokens = { token: fresh.token, ...(fresh.copyToken ? { copyToken: fresh.copyToken } : rj.tokens.copyToken ? { copyToken: rj.tokens.copyToken } : {}) };
        for (const s of rj.stores) {
          const t = s.which === 'store' ? rj.tokens.token : rj.tokens.copyToken;
          if (t) s.opened.setToken(t);
        }
        this.o.log.info('job token refreshed', { job: rj.job.id });
      } catch (err) {
        if (rj.finished.signal.aborted) return;
        if (err instanceof ControlPlaneRequestError && err.code === AgentApiErrorCode.LeaseLost) {
          rj.lost = true;
          rj.controller.abort();
          return;
        }
        failures++;
        this.logCallFailure('job token refresh failed', err, failures, { job: rj.job.id });
      }
    }
  }

  // ---- results ----

  /**
   * Send a spooled result until the control plane acknowledges it (forever, with backoff), then
   * unspool it. Resolves once the first attempt is over (delivered, refused, or failed and being
   * retried); the sending goes on in `sends`.
   */
  private deliver(jobId: string, request: JobCompleteRequest): Promise<void> {
    if (this.sends.has(jobId)) return Promise.resolve();
    let firstAttemptOver!: () => void;
    const firstAttempt = new Promise<void>((resolve) => (firstAttemptOver = resolve));
    const p = (async () => {
      let failures = 0;
      while (!this.ending.signal.aborted) {
        try {
          const answer = await this.o.client.complete(jobId, request, { signal: this.ending.signal, maxAttempts: 1 });
          await this.spool.remove(jobId);
          this.o.log.info('result delivered', { job: jobId, duplicate: answer.duplicate });
          return;
        } catch (err) {
          if (this.ending.signal.aborted) return;
          if (err instanceof ControlPlaneRequestError && FINAL_RESULT_CODES.has(err.code)) {
            // the control plane will never take it (stale attempt, unknown job): keeping it would resend it forever
            await this.spool.remove(jobId);
            this.o.log.warn('result refused for good and dropped', { job: jobId, code: err.code, message: err.message });
            return;
          }
          failures++;
          firstAttemptOver();
          this.logCallFailure('result not delivered; retrying', err, failures, { job: jobId });
          // Nothing renews a finished job's lease (its heartbeats ended with it), so the result must
          // reach a control plane that is back before that lease runs out, or the job is requeued
          // and its work done again: retry at least as often as a running job heartbeats, instead
          // of backing off to the policy's maximum (60 s by default, as long as a default lease).
          await sleep(Math.min(backoffDelay(failures, this.o.backoff), this.o.jobHeartbeatSeconds * 1000), this.ending.signal);
        }
      }
    })().finally(() => {
      this.sends.delete(jobId);
      firstAttemptOver();
    });
    this.sends.set(jobId, p);
    return firstAttempt;
  }

  private logCallFailure(msg: string, err: unknown, failures: number, fields: Record<string, unknown> = {}): void {
    const e = err instanceof ControlPlaneRequestError ? { code: err.code, status: err.status, message: err.message } : { message: err instanceof Error ? err.message : String(err) };
    // the first failure and then every tenth, so an outage does not flood the log
    if (failures === 1 || failures % 10 === 0) this.o.log.warn(msg, { ...fields, failures, ...e });
  }
}

/** Resolves when `p` settles or `signal` aborts, whichever is first (and leaves no listener behind). */
async function untilDoneOrAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  let onAbort!: () => void;
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
