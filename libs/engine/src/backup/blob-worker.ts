/**
 * Worker thread: HMAC chunk IDs, then on request compress + encrypt the new chunks. The data of a
 * batch stays in the worker between the two steps, so it crosses the thread boundary once.
 */
import { createHmac } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { sealBlob, type BlobType } from '../format/blob-codec.ts';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.ts';

const { macKey, zstdLevel } = workerData as { macKey: Uint8Array; zstdLevel: number };
const batches = new Map<number, { data: Buffer; offsets: number[]; lengths: number[] }>();

function reply(msg: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(msg, transfer);
}

parentPort!.on('message', (msg: WorkerRequest) => {
  try {
    if (msg.op === 'hash') {
      const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      const ids = Buffer.allocUnsafeSlow(msg.lengths.length * 32);
      const offsets: number[] = [];
      let pos = 0;
      msg.lengths.forEach((len, i) => {
        offsets.push(pos);
        createHmac('sha256', macKey).update(data.subarray(pos, pos + len)).digest().copy(ids, i * 32);
        pos += len;
      });
      batches.set(msg.seq, { data, offsets, lengths: msg.lengths });
      reply({ op: 'hashed', seq: msg.seq, ids }, [ids.buffer as ArrayBuffer]);
    } else if (msg.op === 'seal') {
      const batch = batches.get(msg.seq);
      if (!batch) throw new Error(`unknown batch ${msg.seq}`);
      batches.delete(msg.seq);
      const transfer: ArrayBuffer[] = [];
      const sealed = msg.indices.map((chunk, i) => {
        const off = batch.offsets[chunk]!;
        const plain = batch.data.subarray(off, off + batch.lengths[chunk]!);
        const id = msg.ids[i]!;
        const s = sealBlob(msg.keys[i]!, id, msg.type as BlobType, plain, zstdLevel);
        if (s.bytes.byteOffset === 0 && s.bytes.buffer.byteLength === s.bytes.length) transfer.push(s.bytes.buffer as ArrayBuffer);
        return { encoding: s.encoding, rawLength: s.rawLength, bytes: s.bytes };
      });
      reply({ op: 'sealed', seq: msg.seq, sealed }, transfer);
    } else if (msg.op === 'drop') {
      batches.delete(msg.seq);
    }
  } catch (err) {
    reply({ op: 'error', seq: msg.seq, message: err instanceof Error ? err.message : String(err) });
  }
});
