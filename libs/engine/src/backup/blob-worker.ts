/**
 * Worker thread of the backup pipeline: reads files, chunks them (FastCDC), computes blob IDs
 * (HMAC-SHA256), and on request compresses + encrypts the chunks the store does not have yet. A
 * batch's data stays here between the two steps, so file content never crosses a thread boundary.
 */
import { createHmac, createSecretKey } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { FastCdc, type ChunkerParams } from '../chunker/fastcdc.ts';
import { chunkWithHints, type ChunkHints } from '../chunker/hinted-chunking.ts';
import { sealBlob, type BlobType } from '../format/blob-codec.ts';
import { errorReply } from '../util/worker-pool.ts';
import type { FileHashResult, WorkerRequest, WorkerResponse } from './worker-protocol.ts';

const { macKey, chunkerKey, chunkerParams, zstdLevel } = workerData as {
  macKey: Uint8Array;
  chunkerKey: Uint8Array;
  chunkerParams: ChunkerParams;
  zstdLevel: number;
};
const chunker = new FastCdc(chunkerKey, chunkerParams);
// a KeyObject imports the key once instead of on every HMAC
const macKeyObject = createSecretKey(macKey);

/** chunks of a hashed batch, kept until sealed or dropped */
const batches = new Map<number, Buffer[]>();
/** the pooled buffer behind a segment batch */
const segmentBuffers = new Map<number, Buffer>();

function releaseBatch(seq: number): void {
  releaseSegmentBuffer(segmentBuffers.get(seq));
  segmentBuffers.delete(seq);
}

function reply(msg: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(msg, transfer);
}

const OWN_BUFFER_MIN = 64 * 1024;

/** A buffer worth transferring on its own: it is the whole of its (large) ArrayBuffer. */
function ownsBuffer(bytes: Buffer): boolean {
  return bytes.length >= OWN_BUFFER_MIN && bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;
}

function blobIdOf(chunk: Buffer): Buffer {
  return createHmac('sha256', macKeyObject).update(chunk).digest();
}

function hashChunks(data: Buffer, lengths: number[], out: Buffer[], ids: Buffer[]): void {
  let pos = 0;
  for (const len of lengths) {
    const chunk = data.subarray(pos, pos + len);
    out.push(chunk);
    ids.push(blobIdOf(chunk));
    pos += len;
  }
}

function packIds(ids: Buffer[]): Buffer {
  const all = Buffer.allocUnsafeSlow(ids.length * 32);
  ids.forEach((id, i) => id.copy(all, i * 32));
  return all;
}

/**
 * Segment buffers are reused: a fresh 16 MiB allocation per segment costs page faults and leaves
 * garbage that the GC reclaims late, inflating memory.
 */
const freeSegments: Buffer[] = [];
const MAX_FREE_SEGMENTS = 2;

function takeSegmentBuffer(length: number): Buffer {
  const i = freeSegments.findIndex((b) => b.length === length);
  return i >= 0 ? freeSegments.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(length);
}

function releaseSegmentBuffer(buf: Buffer | undefined): void {
  if (buf && freeSegments.length < MAX_FREE_SEGMENTS) freeSegments.push(buf);
}

function readSegment(path: Uint8Array, offset: number, length: number): { buf: Buffer; filled: number } {
  const fd = openSync(Buffer.from(path.buffer, path.byteOffset, path.byteLength), 'r');
  const buf = takeSegmentBuffer(length);
  try {
    let filled = 0;
    while (filled < length) {
      const n = readSync(fd, buf, filled, length - filled, offset + filled);
      if (n === 0) break;
      filled += n;
    }
    return { buf, filled };
  } catch (err) {
    releaseSegmentBuffer(buf);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/**
 * Cut the chunks of a segment that are final. A boundary FastCDC finds before the end of the
 * available data is final (the decision depends only on the bytes up to it); a chunk that runs
 * into the end of the data is final only at EOF or at maxSize. So only the last, partial chunk is
 * read again with the next segment.
 */
function finalChunkLengths(data: Buffer, eof: boolean): number[] {
  const lengths: number[] = [];
  let pos = 0;
  while (pos < data.length) {
    const len = chunker.nextChunkLength(data, pos, data.length);
    if (!eof && pos + len === data.length && len < chunkerParams.maxSize) break;
    lengths.push(len);
    pos += len;
  }
  return lengths;
}

/** The final chunks of a segment (with the previous version's chunks as hints, when known). */
function chunkSegment(data: Buffer, eof: boolean, hints: ChunkHints | undefined): { chunks: Buffer[]; lengths: number[]; ids: Buffer[]; consumed: number } {
  const chunks: Buffer[] = [];
  let ids: Buffer[] = [];
  let lengths: number[];
  if (hints) {
    ({ lengths, ids } = chunkWithHints(chunker, blobIdOf, data, eof, hints));
    let pos = 0;
    for (const len of lengths) {
      chunks.push(data.subarray(pos, pos + len));
      pos += len;
    }
  } else {
    lengths = finalChunkLengths(data, eof);
    hashChunks(data, lengths, chunks, ids);
  }
  return { chunks, lengths, ids, consumed: lengths.reduce((a, b) => a + b, 0) };
}

function handle(msg: WorkerRequest): void {
  switch (msg.op) {
    case 'hashFiles': {
      const chunks: Buffer[] = [];
      const ids: Buffer[] = [];
      const files: FileHashResult[] = msg.paths.map((p) => {
        try {
          const data = readFileSync(Buffer.from(p.buffer, p.byteOffset, p.byteLength));
          const before = chunks.length;
          hashChunks(data, chunker.chunkLengths(data), chunks, ids);
          return { ok: true, size: data.length, chunks: chunks.length - before };
        } catch (err) {
          return { ok: false, code: (err as NodeJS.ErrnoException).code, message: (err as Error).message };
        }
      });
      batches.set(msg.seq, chunks);
      const all = packIds(ids);
      reply({ op: 'hashedFiles', seq: msg.seq, files, ids: all }, [all.buffer as ArrayBuffer]);
      return;
    }
    case 'hashSegment': {
      const { buf, filled } = readSegment(msg.path, msg.offset, msg.length);
      const data = buf.subarray(0, filled);
      const eof = filled < msg.length;
      const { chunks, lengths, ids, consumed } = chunkSegment(data, eof, msg.hints);
      batches.set(msg.seq, chunks);
      segmentBuffers.set(msg.seq, buf);
      const all = packIds(ids);
      reply({ op: 'hashedSegment', seq: msg.seq, chunks: lengths.length, consumed, eof: eof && consumed === filled, bytesRead: filled, ids: all }, [all.buffer as ArrayBuffer]);
      return;
    }
    case 'hashData': {
      const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      const { chunks, lengths, ids, consumed } = chunkSegment(data, msg.eof, msg.hints);
      // the chunks keep `data` alive until seal/drop; the unfinished tail goes back as a copy
      batches.set(msg.seq, chunks);
      // (an exactly sized buffer of its own: transferring a pooled one would detach the pool)
      const rest = consumed < data.length ? Buffer.allocUnsafeSlow(data.length - consumed) : undefined;
      if (rest) data.copy(rest, 0, consumed);
      const all = packIds(ids);
      const transfer = [all.buffer as ArrayBuffer];
      if (rest) transfer.push(rest.buffer as ArrayBuffer);
      reply({
        op: 'hashedSegment', seq: msg.seq, chunks: lengths.length, consumed, eof: msg.eof && consumed === data.length, bytesRead: data.length, ids: all,
        ...(rest ? { rest } : {}),
      }, transfer);
      return;
    }
    case 'seal': {
      const chunks = batches.get(msg.seq);
      if (!chunks) throw new Error(`unknown batch ${msg.seq}`);
      batches.delete(msg.seq);
      const sealed = msg.indices.map((chunk, i) => sealBlob(msg.keys[i]!, msg.ids[i]!, msg.type as BlobType, chunks[chunk]!, zstdLevel));
      releaseBatch(msg.seq);
      // Small blobs travel together in one exactly sized buffer, transferred rather than cloned:
      // cloning a Buffer copies its whole backing ArrayBuffer (an 8 KiB pool slab for a 500-byte
      // blob), and thousands of small copies fragment the main thread's heap. A large blob that
      // owns its ArrayBuffer is transferred as it is (no copy).
      const parts: Buffer[] = [];
      const placed: { part: number; offset: number }[] = [];
      const small = sealed.filter((s) => !ownsBuffer(s.bytes));
      const packed = small.length > 0 ? Buffer.allocUnsafeSlow(small.reduce((sum, s) => sum + s.bytes.length, 0)) : undefined;
      if (packed) parts.push(packed);
      let pos = 0;
      for (const s of sealed) {
        if (ownsBuffer(s.bytes)) {
          placed.push({ part: parts.length, offset: 0 });
          parts.push(s.bytes);
        } else {
          placed.push({ part: 0, offset: pos });
          pos += s.bytes.copy(packed!, pos);
        }
      }
      reply(
        {
          op: 'sealed', seq: msg.seq, parts,
          blobs: sealed.map((s, i) => ({ encoding: s.encoding, rawLength: s.rawLength, part: placed[i]!.part, offset: placed[i]!.offset, length: s.bytes.length })),
        },
        parts.map((b) => b.buffer as ArrayBuffer),
      );
      return;
    }
    case 'drop':
      batches.delete(msg.seq);
      releaseBatch(msg.seq);
      return;
  }
}

parentPort!.on('message', (msg: WorkerRequest) => {
  try {
    handle(msg);
  } catch (err) {
    parentPort!.postMessage(errorReply(msg.seq, err));
  }
});
