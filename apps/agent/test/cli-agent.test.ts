/**
 * `arca agent enroll` and `arca agent run` as a user meets them on the command line (docs/cli.md
 * "arca agent enroll", "arca agent run"): what is refused before anything happens and with which
 * exit status, what is written where, and how the daemon ends. The real executable runs as a
 * process against a small stand-in control plane (node:http) that answers the agent API with
 * canned responses: the daemon's behaviour with a real control plane is
 * test/e2e/agent-daemon-resilience.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AGENT_API_PATHS } from '@arca/contracts';
import { runArca, tempDir, type RunResult } from './helpers.ts';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const TOKEN = `arca_enr_${'A'.repeat(86)}`;
const ORG = randomUUID();
const AGENT = randomUUID();

type Mode = 'ok' | 'refuse-token' | 'removed';

/** The agent API, canned: every request is recorded; `mode` decides the answers. */
class FakeControlPlane {
  mode: Mode = 'ok';
  requests: { method: string; path: string; headers: IncomingMessage['headers']; body: Record<string, unknown> }[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  paths(): string[] {
    return this.requests.map((r) => r.path);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += (chunk as Buffer).toString();
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    this.requests.push({ method: req.method!, path: req.url!, headers: req.headers, body });
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    const error = (status: number, code: string, message: string) => send(status, { error: { code, message } });
    if (req.url === AGENT_API_PATHS.enroll) {
      if (this.mode === 'refuse-token') return error(401, 'AGENT_UNAUTHENTICATED', 'authentication failed');
      return send(201, { orgId: ORG, agentId: AGENT, credential: `arca_agt_${'B'.repeat(43)}`, heartbeatSeconds: 1, leaseWaitSeconds: 1 });
    }
    if (this.mode === 'removed') return error(410, 'AGENT_REMOVED', 'this agent was removed');
    if (req.url === AGENT_API_PATHS.heartbeat) return send(200, { serverTime: new Date().toISOString(), heartbeatSeconds: 1, cancelJobs: [] });
    if (req.url === AGENT_API_PATHS.inventory) return send(200, { accepted: 0 });
    if (req.url === AGENT_API_PATHS.lease) {
      // a long poll with nothing to hand out
      const wait = Math.min(1000, Number(body.waitSeconds ?? 0) * 1000);
      const timer = setTimeout(() => send(200, { jobs: [] }), wait);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    return error(404, 'NOT_FOUND', 'no such route');
  }
}

/** help text with its line wrapping undone (commander wraps to the widest option) */
const flat = (text: string) => text.replace(/\s+/g, ' ');
const lines = (r: RunResult) => r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; msg: string; [k: string]: unknown });

/** `arca agent run …` until `until` shows on stderr, then `signal`; the whole run's result. */
function runDaemon(args: string[], signal: NodeJS.Signals | null, env: Record<string, string> = {}, until = /"msg":"agent started"/): Promise<RunResult> {
  return runArca(['agent', 'run', ...args], {
    env,
    onSpawn: (child) => {
      if (signal == null) return;
      let seen = '';
      const onData = (d: Buffer) => {
        seen += d.toString();
        if (until.test(seen)) {
          child.stderr!.off('data', onData);
          // one heartbeat and the first lease first, so the stop is not a start-up race
          setTimeout(() => child.kill(signal), 300);
        }
      };
      child.stderr!.on('data', onData);
    },
  });
}

describe('arca agent enroll / run: command line', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  const cp = new FakeControlPlane();
  let n = 0;
  /** a fresh data directory path (not created) */
  const dataDir = () => path.join(tmp.dir, `agent-${++n}`);
  const enroll = (dir: string, extra: string[] = [], env: Record<string, string> = {}) =>
    runArca(['agent', 'enroll', '--url', cp.url, '--token', TOKEN, '--data-dir', dir, ...extra], { env });

  beforeAll(async () => {
    tmp = await tempDir('arca-cli-agent-');
    await cp.start();
  });
  afterAll(async () => {
    await cp.stop();
    await tmp?.cleanup();
  });
  beforeEach(() => {
    cp.mode = 'ok';
    cp.requests = [];
  });

  describe('usage errors: exit 2, nothing written, nothing sent', () => {
    it('enroll without --url', async () => {
      const dir = dataDir();
      const r = await runArca(['agent', 'enroll', '--token', TOKEN, '--data-dir', dir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/required option '--url <url>' not specified/);
      await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    });

    it('enroll without a token (neither --token nor ARCA_ENROLLMENT_TOKEN), or one that is not arca_enr_…', async () => {
      const dir = dataDir();
      const none = await runArca(['agent', 'enroll', '--url', cp.url, '--data-dir', dir]);
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/^arca: error: no enrollment token given$/m);
      expect(none.stderr).toMatch(/^hint: pass --token arca_enr_… or set ARCA_ENROLLMENT_TOKEN/m);
      const wrong = await runArca(['agent', 'enroll', '--url', cp.url, '--token', 'arca_pat_not-an-enrollment-token', '--data-dir', dir]);
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toMatch(/the enrollment token must start with arca_enr_/);
      expect(wrong.stderr).not.toContain('not-an-enrollment-token');
      await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(cp.requests).toEqual([]);
    });

    it('enroll with a malformed URL: not a URL, not http(s), with credentials, a query or a fragment', async () => {
      for (const url of ['not-a-url', 'ftp://arca.example.com', 'https://user:secret@arca.example.com', 'https://arca.example.com/?x=1', 'https://arca.example.com/#frag']) {
        const dir = dataDir();
        const r = await runArca(['agent', 'enroll', '--url', url, '--token', TOKEN, '--data-dir', dir]);
        expect(r.code, `${url}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(/^arca: error: --url: /m);
        expect(r.stderr).toMatch(/^hint: give the control plane's address, e.g. --url https:\/\/arca.example.com$/m);
        expect(r.stderr).not.toContain('secret');
        // refused before the agent key is created
        await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
      }
      const json = await runArca(['agent', 'enroll', '--json', '--url', 'not-a-url', '--token', TOKEN, '--data-dir', dataDir()]);
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'USAGE' } });
    });

    it('enroll with a malformed --label', async () => {
      const r = await enroll(dataDir(), ['--label', 'Not A Label']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--label Not A Label: use key=value/);
      expect(cp.requests).toEqual([]);
    });

    it('run with --concurrency or --grace-seconds out of range', async () => {
      for (const [flag, value] of [['--concurrency', '0'], ['--concurrency', '17'], ['--concurrency', 'two'], ['--grace-seconds', '-1'], ['--grace-seconds', '1.5'], ['--grace-seconds', '86401']] as const) {
        const r = await runArca(['agent', 'run', '--data-dir', dataDir(), flag, value]);
        expect(r.code, `${flag} ${value}`).toBe(2);
        expect(r.stderr).toMatch(new RegExp(`^arca: error: ${flag} must be a whole number from \\d+ to \\d+, not "${value.replace('.', '\\.')}"$`, 'm'));
      }
    });
  });

  describe('--help', () => {
    it('enroll --help and run --help show the options and examples (exit 0)', async () => {
      const e = await runArca(['agent', 'enroll', '--help']);
      expect(e.code).toBe(0);
      for (const s of ['--url <url>', '--token <token>', '--data-dir <dir>', '--label <key=value>', 'ARCA_ENROLLMENT_TOKEN', 'ARCA_AGENT_DATA_DIR', 'Examples:', 'arca agent enroll --url https://arca.example.com --token arca_enr_...']) {
        expect(flat(e.stdout)).toContain(s);
      }
      const r = await runArca(['agent', 'run', '--help']);
      expect(r.code).toBe(0);
      for (const s of ['--data-dir <dir>', '--concurrency <n>', '--grace-seconds <s>', 'default: 2', 'default: 30', 'Examples:', 'arca agent run --data-dir ~/.arca-agent --concurrency 4 --grace-seconds 120', 'deploy/systemd/arca-agent.service', 'DIR/spool', 'SIGTERM']) {
        expect(flat(r.stdout)).toContain(s);
      }
      // `arca agent help run` is the same text (`arca help agent run` shows the help of `agent`)
      expect((await runArca(['agent', 'help', 'run'])).stdout).toBe(r.stdout);
    });
  });

  describe('state: what is kept where', () => {
    it('enroll creates DIR (0700), DIR/agent.pem (0600) and DIR/agent.json (0600, no secret); again with the same key is the same agent', async () => {
      const dir = dataDir();
      const r = await enroll(dir, ['--label', 'env=prod', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(out).toMatchObject({ dataDir: dir, agentKey: path.join(dir, 'agent.pem'), keyCreated: true, orgId: ORG, agentId: AGENT, url: cp.url });
      expect(r.stdout + r.stderr).not.toContain(TOKEN.slice(9));
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      expect((await stat(path.join(dir, 'agent.pem'))).mode & 0o777).toBe(0o600);
      expect((await stat(path.join(dir, 'agent.json'))).mode & 0o777).toBe(0o600);
      const config = JSON.parse(await readFile(path.join(dir, 'agent.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ version: 1, url: cp.url, orgId: ORG, agentId: AGENT, heartbeatSeconds: 1, leaseWaitSeconds: 1 });
      expect(JSON.stringify(config)).not.toContain(TOKEN.slice(9));

      // what was sent: the token and the new public key, proven with a DPoP proof; labels
      const [sent] = cp.requests;
      expect(sent).toMatchObject({ method: 'POST', path: AGENT_API_PATHS.enroll, body: { token: TOKEN, labels: { env: 'prod' } } });
      expect(sent!.headers.dpop).toBeTruthy();
      expect(sent!.headers.authorization).toBeUndefined();

      // a lost answer is retried by running enroll again: the key is kept
      const key = await readFile(path.join(dir, 'agent.pem'));
      const again = await enroll(dir);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(new RegExp(`^enrolled agent ${AGENT} in organization ${ORG}$`, 'm'));
      expect(again.stdout).not.toContain('(created)');
      expect(await readFile(path.join(dir, 'agent.pem'))).toEqual(key);
      expect((cp.requests[1]!.body.publicJwk as { x: string }).x).toBe((sent!.body.publicJwk as { x: string }).x);
    });

    it('ARCA_ENROLLMENT_TOKEN and ARCA_AGENT_DATA_DIR stand in for --token and --data-dir', async () => {
      const dir = dataDir();
      const r = await runArca(['agent', 'enroll', '--url', cp.url, '-q'], { env: { ARCA_ENROLLMENT_TOKEN: TOKEN, ARCA_AGENT_DATA_DIR: dir } });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(await readFile(path.join(dir, 'agent.json'), 'utf8'))).toMatchObject({ agentId: AGENT });
      const ran = await runDaemon([], 'SIGTERM', { ARCA_AGENT_DATA_DIR: dir });
      expect(ran.code, ran.stderr).toBe(0);
    });
  });

  describe('errors: exit 1 with a hint', () => {
    it('enroll: a refused token', async () => {
      cp.mode = 'refuse-token';
      const dir = dataDir();
      const r = await enroll(dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^arca: error: the control plane refused enrollment: AGENT_UNAUTHENTICATED/m);
      expect(r.stderr).toMatch(/^hint: the enrollment token was refused \(wrong, expired, used up or revoked\)/m);
      expect(r.stderr).not.toContain(TOKEN.slice(9));
      // not enrolled: no agent.json (the key stays, for the next try)
      await expect(stat(path.join(dir, 'agent.json'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(cp.paths()).toEqual([AGENT_API_PATHS.enroll]);
    });

    it('run: not enrolled, an invalid agent.json, a missing agent key, a --data-dir that is a file', async () => {
      const none = await runArca(['agent', 'run', '--data-dir', dataDir()]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/^arca: error: this agent is not enrolled \(no .*agent\.json\)$/m);
      expect(none.stderr).toMatch(/^hint: run `arca agent enroll --url URL --token T` first \(same --data-dir\)$/m);
      const noneJson = await runArca(['agent', 'run', '--json', '--data-dir', dataDir()]);
      expect(JSON.parse(noneJson.stdout)).toMatchObject({ error: { code: 'NOT_ENROLLED' } });

      const bad = dataDir();
      await mkdir(bad);
      await writeFile(path.join(bad, 'agent.json'), '{"version":1,"url":');
      const invalid = await runArca(['agent', 'run', '--json', '--data-dir', bad]);
      expect(invalid.code).toBe(1);
      expect(JSON.parse(invalid.stdout)).toMatchObject({ error: { code: 'AGENT_CONFIG', message: expect.stringMatching(/agent\.json is not a valid agent configuration \(not JSON\): enroll again/) } });

      const keyless = dataDir();
      expect((await enroll(keyless)).code).toBe(0);
      await unlink(path.join(keyless, 'agent.pem'));
      const noKey = await runArca(['agent', 'run', '--data-dir', keyless]);
      expect(noKey.code).toBe(1);
      expect(noKey.stderr).toMatch(/^arca: error: cannot read the agent key file .*agent\.pem \(ENOENT\)$/m);

      const file = path.join(tmp.dir, 'a-file');
      await writeFile(file, '');
      const notDir = await runArca(['agent', 'run', '--data-dir', file]);
      expect(notDir.code).toBe(1);
      expect(notDir.stderr).toMatch(/is not a directory \(give --data-dir the agent's data directory\)/);
    });

    it('an unreadable data directory (another user\'s, mode 0700): run and enroll say so', async () => {
      const dir = dataDir();
      expect((await enroll(dir)).code).toBe(0);
      // root reads everything: run arca as `nobody` then; otherwise take the permissions away
      const as = isRoot ? { uid: NOBODY, gid: NOBODY } : {};
      if (!isRoot) await chmod(dir, 0o000);
      try {
        const run = await runArca(['agent', 'run', '--data-dir', dir], as);
        expect(run.code, run.stderr).toBe(1);
        expect(run.stderr).toMatch(/^arca: error: cannot read .*agent\.json \(EACCES\): the data directory must belong to the user the agent runs as/m);
        const again = await runArca(['agent', 'enroll', '--url', cp.url, '--token', TOKEN, '--data-dir', dir], as);
        expect(again.code, again.stderr).toBe(1);
        expect(again.stderr).toMatch(/^arca: error: cannot write .*agent\.pem \(EACCES\)$/m);
      } finally {
        await chmod(dir, 0o700);
      }
    });

    it('run: an agent removed from the control plane stops at once (exit 1, hint to enroll again)', async () => {
      const dir = dataDir();
      expect((await enroll(dir)).code).toBe(0);
      cp.mode = 'removed';
      const r = await runDaemon(['--data-dir', dir], null);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^arca: error: the control plane refused the heartbeat: AGENT_REMOVED/m);
      expect(r.stderr).toMatch(/^hint: this agent was removed from the control plane: enroll it again to use it$/m);
      expect(lines(r).map((l) => l.msg)).toEqual(expect.arrayContaining(['agent started', 'agent stopped']));
    });
  });

  describe('run: the daemon', () => {
    it('SIGTERM or SIGINT while idle: stops leasing and exits 0, logging JSON lines on stderr (nothing on stdout)', async () => {
      const dir = dataDir();
      expect((await enroll(dir)).code).toBe(0);
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        cp.requests = [];
        const r = await runDaemon(['--data-dir', dir, '--concurrency', '3', '--grace-seconds', '0'], signal);
        expect(r.code, `${signal}: ${r.stderr}`).toBe(0);
        expect(r.stdout).toBe('');
        const log = lines(r);
        expect(log.length).toBeGreaterThan(0);
        expect(log.find((l) => l.msg === 'agent started')).toMatchObject({ level: 'info', url: cp.url, concurrency: 3 });
        expect(log.find((l) => l.msg === 'stopping')).toMatchObject({ runningJobs: [], graceSeconds: 0 });
        expect(log.at(-1)).toMatchObject({ msg: 'agent stopped', spooled: 0 });
        // every call authenticated as the agent, with a proof; the lease asks for --concurrency slots
        expect(cp.requests.length).toBeGreaterThan(0);
        for (const req of cp.requests) {
          expect(req.headers.authorization).toMatch(/^Agent arca_agt_/);
          expect(req.headers.dpop).toBeTruthy();
        }
        expect(cp.requests.find((q) => q.path === AGENT_API_PATHS.lease)?.body).toMatchObject({ slots: 3 });
      }
    });
  });
});
