import os from 'node:os';
import { Worker } from 'node:worker_threads';

interface Pending {
  resolve: (msg: unknown) => void;
  reject: (err: Error) => void;
}

export interface PooledWorker {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** requests sent and not yet answered */
  queued: number;
}

/** A reply a worker sends for a request that threw. */
export interface WorkerErrorReply {
  op: 'error';
  seq: number;
  message: string;
  code?: string;
}

/** Error from a worker's system call, with its errno code (ENOENT, EACCES, ...). */
export class WorkerIoError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.code = code;
  }
}

export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(os.availableParallelism(), 8));
}

/**
 * Request/response over worker threads: every request carries a sequence number that its reply
 * echoes. Requests go to the worker with the fewest outstanding requests unless the caller pins one.
 */
export class WorkerPool<Req extends { seq: number }, Res extends { seq: number; op: string }> {
  readonly workers: PooledWorker[];
  private seq = 0;
  private failed: Error | undefined;

  constructor(script: URL, workerData: unknown, size = defaultWorkerCount()) {
    this.workers = Array.from({ length: size }, () => {
      const worker = new Worker(script, { workerData });
      const pw: PooledWorker = { worker, pending: new Map(), queued: 0 };
      worker.on('message', (msg: Res | WorkerErrorReply) => {
        const p = pw.pending.get(msg.seq);
        if (!p) return;
        pw.pending.delete(msg.seq);
        pw.queued--;
        if (msg.op === 'error') {
          const e = msg as WorkerErrorReply;
          p.reject(e.code ? new WorkerIoError(e.message, e.code) : new Error(`worker: ${e.message}`));
        } else p.resolve(msg);
      });
      worker.on('error', (err) => this.fail(pw, err));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(pw, new Error(`worker exited with code ${code}`));
      });
      return pw;
    });
  }

  nextSeq(): number {
    return ++this.seq;
  }

  leastBusy(): PooledWorker {
    return this.workers.reduce((a, b) => (b.queued < a.queued ? b : a));
  }

  private fail(pw: PooledWorker, err: Error): void {
    this.failed ??= err;
    for (const p of pw.pending.values()) p.reject(err);
    pw.pending.clear();
  }

  request<R extends Res>(pw: PooledWorker, msg: Req, transfer: ArrayBuffer[] = []): Promise<R> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      pw.pending.set(msg.seq, { resolve: resolve as (m: unknown) => void, reject });
      pw.queued++;
      pw.worker.postMessage(msg, transfer);
    });
  }

  /** Fire-and-forget message (no reply expected). */
  post(pw: PooledWorker, msg: Req): void {
    if (!this.failed) pw.worker.postMessage(msg);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

/** Reply with an error for a request that threw. */
export function errorReply(seq: number, err: unknown): WorkerErrorReply {
  const reply: WorkerErrorReply = { op: 'error', seq, message: err instanceof Error ? err.message : String(err) };
  const code = (err as NodeJS.ErrnoException).code;
  if (code) reply.code = code;
  return reply;
}
