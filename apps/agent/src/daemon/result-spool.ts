import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { jobCompleteRequestSchema, type JobCompleteRequest } from '@arca/contracts';

/**
 * Job results waiting for the control plane's acknowledgement (docs/fleet.md §7): written to
 * `DIR/spool/<job>.json` (temp file, fsync, rename, fsync of the directory) before the first send
 * and deleted only once the control plane answered, so a crash, a restart of either side or a
 * network outage never loses a result. Completion is idempotent on the server, so sending a
 * result twice (a crash between the answer and the delete) is harmless.
 */
export interface SpooledResult {
  jobId: string;
  request: JobCompleteRequest;
}

const NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.json$/i;

export class ResultSpool {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async write(jobId: string, request: JobCompleteRequest): Promise<void> {
    const file = this.fileOf(jobId);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      await handle.writeFile(JSON.stringify({ jobId, request } satisfies SpooledResult));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    const dir = await open(this.dir, constants.O_RDONLY).catch(() => undefined);
    await dir?.sync().catch(() => undefined);
    await dir?.close();
  }

  /** Every spooled result; unreadable files are reported to `onBad` and left for an operator. */
  async list(onBad: (file: string, why: string) => void = () => undefined): Promise<SpooledResult[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SpooledResult[] = [];
    for (const name of names.sort()) {
      const m = NAME.exec(name);
      if (!m) continue;
      try {
        const parsed = JSON.parse(await readFile(path.join(this.dir, name), 'utf8')) as { jobId?: unknown; request?: unknown };
        if (parsed.jobId !== m[1]) throw new Error('its job ID does not match its name');
        out.push({ jobId: m[1]!, request: jobCompleteRequestSchema.parse(parsed.request) });
      } catch (err) {
        onBad(path.join(this.dir, name), err instanceof Error ? err.message.slice(0, 200) : 'unreadable');
      }
    }
    return out;
  }

  async remove(jobId: string): Promise<void> {
    await unlink(this.fileOf(jobId)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  private fileOf(jobId: string): string {
    const name = `${jobId}.json`;
    if (!NAME.test(name)) throw new Error(`not a job ID: ${jobId.slice(0, 80)}`);
    return path.join(this.dir, name);
  }
}
