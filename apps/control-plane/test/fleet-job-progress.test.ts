import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents } from '@arca/db';
import { JobEvents } from '../src/jobs/job-events.ts';
import type { BootstrapResult } from '../src/organizations/organization.service.ts';
import { startHarness, type Harness } from './support/control-plane-harness.ts';

// The jobProgress subscription over a real WebSocket (graphql-transport-ws protocol), on a
// listening control plane; progress is emitted through the replica's JobEvents.
let h: Harness;
let acme: BootstrapResult;
let globex: BootstrapResult;
let url: string;

beforeAll(async () => {
  h = await startHarness({ ARCA_CP_PORT: '0', ARCA_CP_SCHEDULER_TICK_SECONDS: '3600' });
  acme = await h.bootstrap('acme');
  globex = await h.bootstrap('globex');
  url = (await h.cp.listen()).replace(/^http/, 'ws') + '/graphql';
});
afterAll(async () => h?.close());

interface Message { type: string; id?: string; payload?: unknown }

/** Opens a graphql-transport-ws connection, subscribes, and collects messages until `complete` or `error`. */
async function subscribe(token: string | null, query: string, variables: Record<string, unknown>, onNext?: (n: number) => void): Promise<Message[]> {
  const ws = new WebSocket(url, { protocols: ['graphql-transport-ws'], headers: token == null ? {} : { authorization: `Bearer ${token}` } } as never);
  const messages: Message[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.close(); reject(new Error(`no end of subscription: ${JSON.stringify(messages)}`)); }, 5000);
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(String(e.data)) as Message;
      if (m.type === 'connection_ack') ws.send(JSON.stringify({ type: 'subscribe', id: '1', payload: { query, variables } }));
      if (m.type === 'ping') ws.send(JSON.stringify({ type: 'pong' }));
      if (m.type === 'next' || m.type === 'error' || m.type === 'complete') messages.push(m);
      if (m.type === 'next') onNext?.(messages.length);
      if (m.type === 'error' || m.type === 'complete') {
        clearTimeout(timer);
        ws.close();
        resolve(messages);
      }
    });
    ws.addEventListener('close', () => { clearTimeout(timer); resolve(messages); });
    ws.addEventListener('error', () => { clearTimeout(timer); resolve(messages); });
  });
}

const Q = 'subscription($id: ID!) { jobProgress(jobId: $id) { jobId status progress } }';

async function initJob(org: BootstrapResult): Promise<string> {
  const agentId = randomUUID();
  await h.cp.db.withTenant(org.orgId, (tx) => tx.insert(agents).values({
    orgId: org.orgId, id: agentId, name: 'a', publicKeyX: randomBytes(32).toString('base64url'), keyThumbprint: randomBytes(32).toString('base64url'), status: 'active', labels: {}, hostname: 'h', os: 'linux', arch: 'x64', version: '1',
  }));
  const s = await h.gql<{ createStore: { id: string } }>(org.token, 'mutation($i: CreateStoreInput!) { createStore(input: $i) { id } }', { i: { name: `s-${randomUUID()}`, kind: 'fs', url: '/srv/x', keyProxyUrl: 'https://kp.test', initAgentId: agentId } });
  const jobs = await h.gql<{ jobs: { edges: Array<{ node: { id: string; storeId: string } }> } }>(org.token, '{ jobs { edges { node { id storeId } } } }');
  return jobs.data!.jobs.edges.find((e) => e.node.storeId === s.data!.createStore.id)!.node.id;
}

describe('jobProgress subscription', () => {
  it('streams the job\'s state, its progress and its end', async () => {
    const jobId = await initJob(acme);
    const events = h.cp.app.get(JobEvents);
    const messages = await subscribe(acme.token, Q, { id: jobId }, (n) => {
      if (n === 1) events.emitProgress({ orgId: acme.orgId, jobId, progress: { phase: 'init', percent: 50 } } as never);
      if (n === 2) {
        events.emitProgress({ orgId: globex.orgId, jobId, progress: { phase: 'other tenant' } } as never);
        events.emitCompleted({ orgId: acme.orgId, jobId, agentId: randomUUID(), status: 'succeeded' });
      }
    });
    expect(messages.map((m) => m.type === 'next' ? (m.payload as { data: { jobProgress: { status: string; progress: unknown } } }).data.jobProgress : m.type)).toEqual([
      { jobId, status: 'queued', progress: null },
      { jobId, status: 'running', progress: { phase: 'init', percent: 50 } },
      { jobId, status: 'succeeded', progress: null },
      'complete',
    ]);
  });

  it('is guarded: no credentials, another tenant\'s job', async () => {
    const jobId = await initJob(acme);
    const anonymous = await subscribe(null, Q, { id: jobId });
    expect(JSON.stringify(anonymous)).toContain('UNAUTHENTICATED');
    expect(anonymous.some((m) => m.type === 'next' && (m.payload as { data?: unknown }).data != null)).toBe(false);
    const other = await subscribe(globex.token, Q, { id: jobId });
    expect(JSON.stringify(other)).toContain('NOT_FOUND');
  });
});
