import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BlobType, SealedBlob } from '../format/blob-codec.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

interface Pending {
  resolve: (msg: WorkerResponse) => void;
  reject: (err: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Pending>;
  /** bytes handed over and not yet sealed or dropped */
  load: number;
}

/** A batch of chunks living in one worker between `hash` and `seal`/`drop`. */
export interface HashedBatch {
  ids: Buffer[];
  readonly worker: PoolWorker;
  readonly seq: number;
  readonly bytes: number;
}

/**
 * Spreads chunk hashing, compression and encryption over worker threads (one per core by default),
 * routing each batch to the least-loaded worker.
 */
export class BlobWorkerPool {
  private readonly workers: PoolWorker[];
  private seq = 0;
  private failed: Error | undefined;

  constructor(macKey: Uint8Array, zstdLevel: number, size = Math.max(1, Math.min(os.availableParallelism(), 8))) {
    this.workers = Array.from({ length: size }, () => {
      const worker = new Worker(new URL('./blob-worker.ts', import.meta.url), { workerData: { macKey, zstdLevel } });
      const pw: PoolWorker = { worker, pending: new Map(), load: 0 };
      worker.on('message', (msg: WorkerResponse) => {
        const p = pw.pending.get(msg.seq);
        if (!p) return;
        pw.pending.delete(msg.seq);
        if (msg.op === 'error') p.reject(new Error(`worker: ${msg.message}`));
        else p.resolve(msg);
      });
      worker.on('error', (err) => this.fail(pw, err));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(pw, new Error(`blob worker exited with code ${code}`));
      });
      return pw;
    });
  }

  private fail(pw: PoolWorker, err: Error): void {
    this.failed ??= err;
    for (const p of pw.pending.values()) p.reject(err);
    pw.pending.clear();
  }

  private request(pw: PoolWorker, msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerResponse> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      pw.pending.set(msg.seq, { resolve, reject });
      pw.worker.postMessage(msg, transfer);
    });
  }

  /** Hash the chunks of `data`; with `transfer`, its whole ArrayBuffer moves to the worker (do not use it afterwards). */
  async hash(data: Buffer, lengths: number[], transfer: boolean): Promise<HashedBatch> {
    const pw = this.workers.reduce((a, b) => (b.load < a.load ? b : a));
    const seq = ++this.seq;
    const bytes = data.length;
    pw.load += bytes;
    const msg = await this.request(pw, { op: 'hash', seq, data, lengths }, transfer && data.byteOffset === 0 ? [data.buffer as ArrayBuffer] : []);
    if (msg.op !== 'hashed') throw new Error('unexpected worker reply');
    const all = Buffer.from(msg.ids.buffer, msg.ids.byteOffset, msg.ids.byteLength);
    const ids = lengths.map((_, i) => all.subarray(i * 32, i * 32 + 32));
    return { ids, worker: pw, seq, bytes };
  }

  /** Compress and encrypt chunks `indices` of a hashed batch; releases the batch. */
  async seal(batch: HashedBatch, indices: number[], keys: Buffer[], type: BlobType): Promise<SealedBlob[]> {
    try {
      const ids = indices.map((i) => batch.ids[i]!);
      const msg = await this.request(batch.worker, { op: 'seal', seq: batch.seq, indices, ids, keys, type });
      if (msg.op !== 'sealed') throw new Error('unexpected worker reply');
      return msg.sealed.map((s) => ({ encoding: s.encoding, rawLength: s.rawLength, bytes: Buffer.from(s.bytes.buffer, s.bytes.byteOffset, s.bytes.byteLength) }));
    } finally {
      batch.worker.load -= batch.bytes;
    }
  }

  drop(batch: HashedBatch): void {
    batch.worker.load -= batch.bytes;
    if (!this.failed) batch.worker.worker.postMessage({ op: 'drop', seq: batch.seq } satisfies WorkerRequest);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
