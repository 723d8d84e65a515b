import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Database } from '@arca/db';
import { progressSchema } from '@arca/contracts';
import { DATABASE } from '../database/database.tokens.ts';
import { JobEvents } from './job-events.ts';

export const JOBS_CHANNEL = 'arca_jobs';
export const JOB_PROGRESS_CHANNEL = 'arca_job_progress';

/**
 * Wakes long-polling agents when a job is queued for them. Postgres: every replica LISTENs on
 * `arca_jobs` ('<org>:<agent>', sent at the commit of the enqueue); PGlite and local enqueues:
 * `wake()` directly. Waiters also re-check on a timer, so a lost notification costs latency only.
 * Progress notifications from other replicas are re-emitted on JobEvents.
 */
@Injectable()
export class JobWakeups implements OnModuleInit, OnApplicationShutdown {
  private readonly db: Database;
  private readonly events: JobEvents;
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscriptions: Array<{ unlisten(): Promise<void> }> = [];

  constructor(@Inject(DATABASE) db: Database, events: JobEvents) {
    this.db = db;
    this.events = events;
  }

  async onModuleInit(): Promise<void> {
    const jobsSub = await this.db.listen(JOBS_CHANNEL, (payload) => this.wakeKey(payload));
    const progressSub = await this.db.listen(JOB_PROGRESS_CHANNEL, (payload) => this.onRemoteProgress(payload));
    this.subscriptions = [jobsSub, progressSub].filter((s) => s != null);
  }

  async onApplicationShutdown(): Promise<void> {
    const subs = this.subscriptions;
    this.subscriptions = [];
    await Promise.allSettled(subs.map((s) => s.unlisten()));
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  /** The agents with a long poll waiting on this replica, by organization (for the batched re-check). */
  waitingAgents(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const key of this.waiters.keys()) {
      const [orgId, agentId] = key.split(':') as [string, string];
      const agents = out.get(orgId);
      if (agents == null) out.set(orgId, new Set([agentId]));
      else agents.add(agentId);
    }
    return out;
  }

  wake(orgId: string, agentId: string): void {
    this.wakeKey(`${orgId}:${agentId}`);
  }

  /**
   * Arms a wake-up for the agent: `woken` resolves after `ms`, or earlier when a job is queued for
   * it, when the app stops, or when `cancel` is called (which also unregisters it at once).
   */
  arm(orgId: string, agentId: string, ms: number): { woken: Promise<void>; cancel: () => void } {
    const key = `${orgId}:${agentId}`;
    let set = this.waiters.get(key);
    if (set == null) {
      set = new Set();
      this.waiters.set(key, set);
    }
    let done!: () => void;
    const woken = new Promise<void>((resolve) => {
      done = (): void => {
        clearTimeout(timer);
        const current = this.waiters.get(key);
        current?.delete(done);
        if (current?.size === 0) this.waiters.delete(key);
        resolve();
      };
    });
    const timer = setTimeout(done, ms);
    set.add(done);
    return { woken, cancel: done };
  }

  private wakeKey(key: string): void {
    const set = this.waiters.get(key);
    if (set == null) return;
    for (const wake of [...set]) wake();
  }

  private onRemoteProgress(payload: string): void {
    try {
      const parsed = JSON.parse(payload) as { orgId?: unknown; jobId?: unknown; progress?: unknown; origin?: unknown };
      if (parsed.origin === ORIGIN) return;
      const progress = progressSchema.safeParse(parsed.progress);
      if (typeof parsed.orgId !== 'string' || typeof parsed.jobId !== 'string' || !progress.success) return;
      this.events.emitProgress({ orgId: parsed.orgId, jobId: parsed.jobId, progress: progress.data });
    } catch {
      // not ours or malformed: ignore
    }
  }
}

/** This process's tag on its own progress notifications, so it does not re-emit what it emitted. */
export const ORIGIN = `${process.pid}-${Math.random().toString(36).slice(2)}`;
