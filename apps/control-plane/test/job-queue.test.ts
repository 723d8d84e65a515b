import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents, Database, jobEvents, jobs, stores } from '@arca/db';
import { and, asc, eq } from 'drizzle-orm';
import { createControlPlane, createLogger, type ControlPlane } from '../src/server.ts';
import { JobQueueService, LeaseLostError } from '../src/jobs/job-queue.service.ts';
import { JobWakeups } from '../src/jobs/job-wakeups.ts';
import { JobEvents, type JobChange } from '../src/jobs/job-events.ts';
import { startHarness, type Harness } from './support/control-plane-harness.ts';

// Medium tier: the real Postgres, two control-plane instances on one scratch database.
const ENV = { ARCA_CP_JOB_RETRY_BACKOFF_SECONDS: '0', ARCA_CP_JOB_LEASE_SECONDS: '60', ARCA_CP_LEASE_SWEEP_SECONDS: '3600' };

describe('job queue (docs/fleet.md §4)', () => {
  let h: Harness;
  let second: ControlPlane;
  let q1: JobQueueService;
  let q2: JobQueueService;
  let orgA: string;
  let orgB: string;
  const agentA = randomUUID();
  const agentB = randomUUID();
  const storeA = randomUUID();
  const storeB = randomUUID();

  async function seed(orgId: string, agentId: string, storeRowId: string): Promise<void> {
    await h.cp.db.withTenant(orgId, async (tx) => {
      await tx.insert(agents).values({
        orgId, id: agentId, name: 'host', publicKeyX: randomBytes(32).toString('base64url'), keyThumbprint: randomBytes(32).toString('base64url'),
        hostname: 'host', os: 'linux', arch: 'x64', version: '1',
      });
      await tx.insert(stores).values({ orgId, id: storeRowId, name: 'primary', storeId: randomBytes(32).toString('hex'), kind: 'fs', url: 'fs:///srv/store', keyProxyUrl: 'https://kp.test' });
    });
  }
  const enqueue = (q: JobQueueService, orgId = orgA, agentId = agentA, storeId = storeA, priority = 0) =>
    q.enqueue(orgId, { kind: 'check', agentId, storeId, spec: { readData: false, n: priority }, requestedBy: 'test' });
  const jobRow = (orgId: string, id: string) => h.cp.db.readTenant(orgId, async (tx) => (await tx.select().from(jobs).where(and(eq(jobs.orgId, orgId), eq(jobs.id, id))))[0]!);
  const eventKinds = (orgId: string, id: string) => h.cp.db.readTenant(orgId, async (tx) =>
    (await tx.select().from(jobEvents).where(and(eq(jobEvents.orgId, orgId), eq(jobEvents.jobId, id))).orderBy(asc(jobEvents.seq))).map((e) => e.kind));
  const expireLease = (id: string) => h.scratch.owner`UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = ${id}`;

  beforeAll(async () => {
    h = await startHarness(ENV);
    orgA = (await h.bootstrap()).orgId;
    orgB = (await h.bootstrap()).orgId;
    await seed(orgA, agentA, storeA);
    await seed(orgB, agentB, storeB);
    const db = await Database.open({ kind: 'postgres', url: h.scratch.appUrl, poolSize: 4 });
    second = await createControlPlane({ config: h.config, db, logger: createLogger({ logLevel: 'info' }, new Writable({ write: (_c, _e, done) => done() })) });
    q1 = h.cp.app.get(JobQueueService);
    q2 = second.app.get(JobQueueService);
  }, 60_000);
  afterAll(async () => {
    await second?.close();
    await h?.close();
  });

  it('leases, renews and completes a job once; a repeated completion is a duplicate, a stale attempt loses the lease', async () => {
    const completed: JobChange[] = [];
    const off = h.cp.app.get(JobEvents).onCompleted((c) => completed.push(c));
    const id = (await enqueue(q1))!;
    const [leased] = await q1.lease(orgA, agentA, 1);
    expect(leased?.id).toBe(id);
    expect(leased?.status).toBe('leased');
    expect(await q2.lease(orgA, agentA, 1)).toEqual([]);
    const renewed = await q1.renew(orgA, agentA, id, 1, { phase: 'scan', percent: 10 }, [{ time: new Date().toISOString(), level: 'info', message: 'hello' }]);
    expect(renewed.cancelRequested).toBe(false);
    expect((await jobRow(orgA, id)).status).toBe('running');
    await expect(q1.renew(orgA, agentA, id, 2)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(q1.renew(orgA, randomUUID(), id, 1)).rejects.toBeInstanceOf(LeaseLostError);
    expect(await q1.complete(orgA, agentA, id, { attempt: 1, outcome: 'succeeded', result: { ok: true } })).toEqual({ duplicate: false, status: 'succeeded' });
    expect(await q2.complete(orgA, agentA, id, { attempt: 1, outcome: 'succeeded' })).toEqual({ duplicate: true, status: 'succeeded' });
    await expect(q1.complete(orgA, agentA, id, { attempt: 2, outcome: 'succeeded' })).rejects.toBeInstanceOf(LeaseLostError);
    expect(await eventKinds(orgA, id)).toEqual(['queued', 'leased', 'running', 'log', 'completed']);
    expect(completed.filter((c) => c.jobId === id)).toEqual([{ orgId: orgA, jobId: id, agentId: agentA, status: 'succeeded', kind: 'check' }]);
    off();
  });

  it('a retryable failure is requeued with the next attempt; a repeat of that failed completion is a duplicate', async () => {
    const id = (await enqueue(q1))!;
    await q1.lease(orgA, agentA, 1);
    const failed = { attempt: 1, outcome: 'failed' as const, error: { code: 'NETWORK', message: 'reset', retryable: true } };
    expect(await q1.complete(orgA, agentA, id, failed)).toEqual({ duplicate: false, status: 'queued' });
    expect(await q1.complete(orgA, agentA, id, failed)).toEqual({ duplicate: true, status: 'queued' });
    const [again] = await q1.lease(orgA, agentA, 1);
    expect([again?.id, again?.attempt]).toEqual([id, 2]);
    expect(await q1.complete(orgA, agentA, id, { attempt: 2, outcome: 'failed', error: { code: 'BAD', message: 'no', retryable: false } })).toMatchObject({ status: 'failed' });
  });

  it('cancels a queued job at once and asks a running one to stop', async () => {
    const queued = (await enqueue(q1))!;
    expect(await q1.cancel(orgA, queued, 'user:test')).toBe('cancelled');
    expect((await jobRow(orgA, queued)).finishedAt).not.toBeNull();
    const running = (await enqueue(q1))!;
    await q1.lease(orgA, agentA, 1);
    expect(await q1.cancel(orgA, running, 'user:test')).toBe('leased');
    expect((await q1.renew(orgA, agentA, running, 1)).cancelRequested).toBe(true);
    expect(await q1.cancelRequested(orgA, agentA, [running])).toEqual([running]);
    expect(await q1.complete(orgA, agentA, running, { attempt: 1, outcome: 'cancelled' })).toMatchObject({ status: 'cancelled' });
  });

  it('an expired lease is requeued with attempt + 1, and fails with LEASE_EXPIRED once attempts are used up', async () => {
    const id = (await q1.enqueue(orgA, { kind: 'check', agentId: agentA, storeId: storeA, spec: { readData: false }, requestedBy: 'test' }))!;
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      const [leased] = await q1.lease(orgA, agentA, 1);
      expect([leased?.id, leased?.attempt]).toEqual([id, attempt]);
      await expireLease(id);
      // both replicas sweep at once: the job is handled once
      const handled = await Promise.all([q1.expireLeases(), q2.expireLeases()]);
      expect(handled[0] + handled[1]).toBe(1);
      await expect(q1.complete(orgA, agentA, id, { attempt, outcome: 'succeeded' })).rejects.toBeInstanceOf(LeaseLostError);
    }
    const row = await jobRow(orgA, id);
    expect([row.status, row.attempt, row.error?.code]).toEqual(['failed', 3, 'LEASE_EXPIRED']);
    expect((await eventKinds(orgA, id)).filter((k) => k === 'requeued')).toHaveLength(2);
  });

  it('keeps tenants apart: another organization cannot lease, renew or complete these jobs', async () => {
    const id = (await enqueue(q1))!;
    expect(await q1.lease(orgB, agentA, 5)).toEqual([]);
    expect(await q1.lease(orgB, agentB, 5)).toEqual([]);
    await expect(q1.complete(orgB, agentA, id, { attempt: 1, outcome: 'succeeded' })).rejects.toBeInstanceOf(LeaseLostError);
    expect(await q1.cancel(orgB, id, 'user:x')).toBeNull();
    expect((await q1.lease(orgA, agentA, 5)).map((j) => j.id)).toContain(id);
  });

  it('two replicas leasing concurrently never hand one job to two agents', async () => {
    await h.scratch.owner`UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL WHERE status IN ('queued', 'leased', 'running')`;
    const ids = new Set<string>();
    for (let i = 0; i < 60; i += 1) ids.add((await enqueue(i % 2 === 0 ? q1 : q2))!);
    const seen: string[] = [];
    const worker = async (q: JobQueueService): Promise<void> => {
      for (;;) {
        const got = await q.lease(orgA, agentA, 3);
        if (got.length === 0) return;
        seen.push(...got.map((j) => j.id));
      }
    };
    await Promise.all([worker(q1), worker(q2), worker(q1), worker(q2), worker(q1), worker(q2)]);
    expect(seen).toHaveLength(60);
    expect(new Set(seen)).toEqual(ids);
  });

  it('a long poll on one replica wakes promptly when another replica queues a job (LISTEN/NOTIFY)', async () => {
    const wakeups = h.cp.app.get(JobWakeups);
    const started = Date.now();
    const waiting = wakeups.arm(orgA, agentA, 10_000).woken;
    await new Promise((r) => setTimeout(r, 50));
    await enqueue(q2);
    await waiting;
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
