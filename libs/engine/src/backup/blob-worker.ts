/**
 * Worker thread of the backup pipeline: reads files, chunks them (FastCDC), computes blob IDs
 * (HMAC-SHA256), and on request compresses + encrypts the chunks the store does not have yet. A
 * batch's data stays here between the two steps, so file content never crosses a thread boundary.
 */
import { createHmac, createSecretKey } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { FastCdc, type ChunkerParams } from '../chunker/fastcdc.ts';
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

function reply(msg: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(msg, transfer);
}

function hashChunks(data: Buffer, lengths: number[], out: Buffer[], ids: Buffer[]): void {
  let pos = 0;
  for (const len of lengths) {
    const chunk = data.subarray(pos, pos + len);
    out.push(chunk);
    ids.push(createHmac('sha256', macKeyObject).update(chunk).digest());
    pos += len;
  }
}

function packIds(ids: Buffer[]): Buffer {
  const all = Buffer.allocUnsafeSlow(ids.length * 32);
  ids.forEach((id, i) => id.copy(all, i * 32));
  return all;
}

function readSegment(path: Uint8Array, offset: number, length: number): Buffer {
  const fd = openSync(Buffer.from(path.buffer, path.byteOffset, path.byteLength), 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(length);
    let filled = 0;
    while (filled < length) {
      const n = readSync(fd, buf, filled, length - filled, offset + filled);
      if (n === 0) break;
      filled += n;
    }
    return buf.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
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
      const data = readSegment(msg.path, msg.offset, msg.length);
      const eof = data.length < msg.length;
      const lengths: number[] = [];
      let pos = 0;
      while (pos < data.length && (eof || data.length - pos >= chunkerParams.maxSize)) {
        const len = chunker.nextChunkLength(data, pos, data.length);
        lengths.push(len);
        pos += len;
      }
      const chunks: Buffer[] = [];
      const ids: Buffer[] = [];
      hashChunks(data, lengths, chunks, ids);
      batches.set(msg.seq, chunks);
      const all = packIds(ids);
      reply({ op: 'hashedSegment', seq: msg.seq, chunks: lengths.length, consumed: pos, eof: eof && pos === data.length, bytesRead: data.length, ids: all }, [all.buffer as ArrayBuffer]);
      return;
    }
    case 'seal': {
      const chunks = batches.get(msg.seq);
      if (!chunks) throw new Error(`unknown batch ${msg.seq}`);
      batches.delete(msg.seq);
      const transfer: ArrayBuffer[] = [];
      const sealed = msg.indices.map((chunk, i) => {
        const s = sealBlob(msg.keys[i]!, msg.ids[i]!, msg.type as BlobType, chunks[chunk]!, zstdLevel);
        if (s.bytes.byteOffset === 0 && s.bytes.buffer.byteLength === s.bytes.length) transfer.push(s.bytes.buffer as ArrayBuffer);
        return { encoding: s.encoding, rawLength: s.rawLength, bytes: s.bytes };
      });
      reply({ op: 'sealed', seq: msg.seq, sealed }, transfer);
      return;
    }
    case 'drop':
      batches.delete(msg.seq);
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
