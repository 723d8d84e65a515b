/**
 * Two timing promises of the agent daemon's loop (agent-daemon.ts) that the end-to-end suite
 * (test/e2e/agent-daemon-resilience.test.ts) cannot pin down, checked here with a scripted control
 * plane and deterministic backoff (random = 1: every delay is its ceiling):
 *
 * - a result that could not be delivered is retried at least every job-heartbeat interval, however
 *   far the backoff has grown: nothing renews a finished job's lease, so a slow retry after an
 *   outage let the lease run out and the job be requeued and run again;
 * - a job's slot is freed only once its result's first delivery attempt is over, so the next lease
 *   does not race the completion (the control plane never has more than --concurrency of the
 *   agent's jobs active).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { generateAgentIdentity } from '@arca/crypto';
import type { JobCompleteRequest, LeasedJob } from '@arca/contracts';
import { AgentDaemon } from '../src/daemon/agent-daemon.ts';
import { ControlPlaneRequestError, type ControlPlaneClient } from '../src/daemon/control-plane-client.ts';
import { JsonLog } from '../src/daemon/json-log.ts';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function leasedJob(): LeasedJob {
  return {
    id: randomUUID(), kind: 'backup', attempt: 1, leaseExpiresAt: new Date(Date.now() + 60_000).toISOString(), leaseSeconds: 60,
    spec: {}, store: { id: randomUUID(), storeId: 'a'.repeat(64), url: '/nowhere', keyProxyUrl: 'http://127.0.0.1:1', credentials: null },
    // a job token as far as the daemon reads it (its expiry, for the refresh schedule)
    token: `${b64({ alg: 'EdDSA' })}.${b64({ store: 'a'.repeat(64), exp: Math.floor(Date.now() / 1000) + 3600 })}.c2ln`,
  };
}

interface Scripted {
  /** answers POST jobs/{id}/complete; throw to fail the attempt */
  complete: (jobId: string, request: JobCompleteRequest) => Promise<{ recorded: true; duplicate: boolean }>;
}

/** A control plane that hands out `jobs` one lease at a time and records when each call came. */
function scriptedClient(jobs: LeasedJob[], script: Scripted) {
  const calls: { what: string; at: number }[] = [];
  const client = {
    url: 'http://control-plane.test',
    heartbeat: async () => ({ serverTime: new Date().toISOString(), heartbeatSeconds: 60, cancelJobs: [] }),
    inventory: async () => ({ accepted: 0 }),
    lease: (slots: number, _wait: number, options: { signal?: AbortSignal }) => {
      calls.push({ what: 'lease', at: Date.now() });
      const next = jobs.splice(0, slots);
      if (next.length > 0) return Promise.resolve({ jobs: next });
      // a long poll with nothing to hand out, until the daemon stops
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ jobs: [] }), 200);
        options.signal?.addEventListener('abort', () => { clearTimeout(timer); resolve({ jobs: [] }); }, { once: true });
      });
    },
    jobHeartbeat: async () => ({ leaseExpiresAt: new Date(Date.now() + 60_000).toISOString(), cancelRequested: false }),
    jobToken: async () => { throw new Error('not expected'); },
    complete: async (jobId: string, request: JobCompleteRequest) => {
      const call = { what: 'complete', at: Date.now(), answeredAt: 0 };
      calls.push(call);
      try {
        return await script.complete(jobId, request);
      } finally {
        call.answeredAt = Date.now();
      }
    },
  };
  return { client: client as unknown as ControlPlaneClient, calls: calls as { what: string; at: number; answeredAt?: number }[] };
}

describe('agent daemon loop: result delivery and slots', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  const daemonWith = async (client: ControlPlaneClient, lines: string[], jobHeartbeatSeconds: number) => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'arca-daemon-loop-'));
    dirs.push(dataDir);
    const daemon = new AgentDaemon({
      client, identity: generateAgentIdentity(), dataDir, concurrency: 1, graceSeconds: 0, heartbeatSeconds: 60, leaseWaitSeconds: 1,
      jobHeartbeatSeconds, backoff: { baseMs: 100, maxMs: 60_000, random: () => 1 }, resultDeliverySeconds: 1,
      log: new JsonLog({ write: (l: string) => lines.push(l) }, 'debug'), version: 'test', storeAccess: { allowHttp: true },
      runJob: async () => ({ outcome: 'succeeded', result: { ok: true } }),
    });
    return { daemon, dataDir };
  };

  it('a result not delivered during an outage is retried at least every job-heartbeat interval, and arrives right after the outage', async () => {
    const outageMs = 2000;
    const t0 = Date.now();
    let delivered = 0;
    const { client, calls } = scriptedClient([leasedJob()], {
      complete: async () => {
        if (Date.now() - t0 < outageMs) throw new ControlPlaneRequestError(0, 'NETWORK', 'the control plane cannot be reached', true);
        delivered = Date.now();
        return { recorded: true, duplicate: false };
      },
    });
    const lines: string[] = [];
    const { daemon, dataDir } = await daemonWith(client, lines, 0.25);
    const running = daemon.run();
    await expect.poll(() => delivered, { timeout: 10_000, interval: 20 }).toBeGreaterThan(0);
    daemon.stop();
    await running;

    const attempts = calls.filter((c) => c.what === 'complete').map((c) => c.at);
    // uncapped, backoff 100 ms * 2^n would have waited 1.6 s after the attempt at ~1.5 s
    expect(attempts.length).toBeGreaterThanOrEqual(8);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(Math.max(...gaps)).toBeLessThan(250 + 150);
    expect(delivered - (t0 + outageMs)).toBeLessThan(250 + 150);
    expect(lines.some((l) => l.includes('"msg":"result not delivered; retrying"'))).toBe(true);
    expect(lines.some((l) => l.includes('"msg":"result delivered"'))).toBe(true);
    expect((await readdir(path.join(dataDir, 'spool'))).filter((n) => n.endsWith('.json'))).toEqual([]);
  });

  it('--concurrency 1: the next lease is asked for only after the finished job\'s result was answered', async () => {
    const { client, calls } = scriptedClient([leasedJob(), leasedJob()], {
      // a slow completion (the full path: snapshots into the catalog)
      complete: async () => {
        await new Promise((r) => setTimeout(r, 300));
        return { recorded: true, duplicate: false };
      },
    });
    const { daemon } = await daemonWith(client, [], 15);
    const running = daemon.run();
    await expect.poll(() => calls.filter((c) => c.what === 'complete' && c.answeredAt).length, { timeout: 10_000, interval: 20 }).toBe(2);
    daemon.stop();
    await running;

    // lease (job 1), complete 1, lease (job 2), complete 2, lease …: never a lease while a completion is open
    const order = calls.map((c) => c.what);
    expect(order.slice(0, 4)).toEqual(['lease', 'complete', 'lease', 'complete']);
    for (const c of calls.filter((x) => x.what === 'complete')) {
      for (const l of calls.filter((x) => x.what === 'lease')) expect(l.at < c.at || l.at >= c.answeredAt!).toBe(true);
    }
  });
});
