import type { ChunkerParams } from '../chunker/fastcdc.ts';
import type { ChunkHints } from '../chunker/hinted-chunking.ts';
import type { BlobType, SealedBlob } from '../format/blob-codec.ts';
import { WorkerPool, type PooledWorker } from '../util/worker-pool.ts';
import type { FileHashResult, WorkerRequest, WorkerResponse } from './worker-protocol.ts';

/** Chunks living in one worker between hashing and `seal`/`drop`. */
export interface HashedBatch {
  ids: Buffer[];
  readonly worker: PooledWorker;
  readonly seq: number;
}

export interface HashedFiles extends HashedBatch {
  files: FileHashResult[];
}

export interface HashedSegment extends HashedBatch {
  consumed: number;
  eof: boolean;
  bytesRead: number;
}

export interface HashedData extends HashedSegment {
  /** the bytes after the last final chunk (they start the next segment) */
  rest: Buffer | undefined;
}

export interface WorkerKeys {
  macKey: Uint8Array;
  chunkerKey: Uint8Array;
  chunkerParams: ChunkerParams;
  zstdLevel: number;
}

/** Worker threads (one per core) that read, chunk, hash, compress and encrypt for a backup. */
export class BlobWorkerPool {
  private readonly pool: WorkerPool<WorkerRequest, WorkerResponse>;

  constructor(keys: WorkerKeys, size?: number) {
    this.pool = new WorkerPool(new URL('./blob-worker.ts', import.meta.url), keys, size);
  }

  async hashFiles(paths: Buffer[]): Promise<HashedFiles> {
    const worker = this.pool.leastBusy();
    const seq = this.pool.nextSeq();
    const msg = await this.pool.request<Extract<WorkerResponse, { op: 'hashedFiles' }>>(worker, { op: 'hashFiles', seq, paths });
    return { ids: splitIds(msg.ids), files: msg.files, worker, seq };
  }

  async hashSegment(path: Buffer, offset: number, length: number, hints?: ChunkHints): Promise<HashedSegment> {
    const worker = this.pool.leastBusy();
    const seq = this.pool.nextSeq();
    const request: WorkerRequest = hints ? { op: 'hashSegment', seq, path, offset, length, hints } : { op: 'hashSegment', seq, path, offset, length };
    const msg = await this.pool.request<Extract<WorkerResponse, { op: 'hashedSegment' }>>(worker, request);
    return { ids: splitIds(msg.ids), consumed: msg.consumed, eof: msg.eof, bytesRead: msg.bytesRead, worker, seq };
  }

  /**
   * Chunk and hash bytes of a stream. `data` must be the whole of its ArrayBuffer: it is
   * transferred to the worker (and unusable here afterwards).
   */
  async hashData(data: Buffer, eof: boolean, hints?: ChunkHints): Promise<HashedData> {
    const worker = this.pool.leastBusy();
    const seq = this.pool.nextSeq();
    const request: WorkerRequest = hints ? { op: 'hashData', seq, data, eof, hints } : { op: 'hashData', seq, data, eof };
    const msg = await this.pool.request<Extract<WorkerResponse, { op: 'hashedSegment' }>>(worker, request, [data.buffer as ArrayBuffer]);
    const rest = msg.rest ? Buffer.from(msg.rest.buffer, msg.rest.byteOffset, msg.rest.byteLength) : undefined;
    return { ids: splitIds(msg.ids), consumed: msg.consumed, eof: msg.eof, bytesRead: msg.bytesRead, rest, worker, seq };
  }

  /** Compress and encrypt chunks `indices` of a hashed batch; releases the batch. */
  async seal(batch: HashedBatch, indices: number[], keys: Buffer[], type: BlobType): Promise<SealedBlob[]> {
    const ids = indices.map((i) => batch.ids[i]!);
    const msg = await this.pool.request<Extract<WorkerResponse, { op: 'sealed' }>>(batch.worker, { op: 'seal', seq: batch.seq, indices, ids, keys, type });
    const parts = msg.parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    return msg.blobs.map((b) => ({ encoding: b.encoding, rawLength: b.rawLength, bytes: parts[b.part]!.subarray(b.offset, b.offset + b.length) }));
  }

  drop(batch: HashedBatch): void {
    this.pool.post(batch.worker, { op: 'drop', seq: batch.seq });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

function splitIds(all: Uint8Array): Buffer[] {
  const buf = Buffer.from(all.buffer, all.byteOffset, all.byteLength);
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += 32) out.push(buf.subarray(i, i + 32));
  return out;
}
