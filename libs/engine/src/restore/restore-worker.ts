/**
 * Worker thread of the restorer: decrypts, decompresses and writes whole files with synchronous,
 * descriptor-based calls (far cheaper per file than promise-based fs), then sets mode, owner and
 * times on the open descriptor.
 */
import { createHmac, createSecretKey } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, futimesSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { openBlob, type BlobEncoding, type BlobType } from '../format/blob-codec.ts';
import { errorReply } from '../util/worker-pool.ts';
import type { RestoreBlob, RestoreRequest, RestoreResponse } from './restore-protocol.ts';

const macKey = createSecretKey((workerData as { macKey: Uint8Array }).macKey);

const PACK_FDS = 32;
const packFds = new Map<string, number>();

function packFd(path: string): number {
  let fd = packFds.get(path);
  if (fd !== undefined) {
    packFds.delete(path);
    packFds.set(path, fd); // most recently used last
    return fd;
  }
  fd = openSync(path, 'r');
  packFds.set(path, fd);
  if (packFds.size > PACK_FDS) {
    const [oldPath, oldFd] = packFds.entries().next().value as [string, number];
    packFds.delete(oldPath);
    closeSync(oldFd);
  }
  return fd;
}

function sealedBytes(blob: RestoreBlob): Buffer {
  if (blob.sealed) return Buffer.from(blob.sealed.buffer, blob.sealed.byteOffset, blob.sealed.byteLength);
  const buf = Buffer.allocUnsafe(blob.length);
  const fd = packFd(blob.packPath!);
  let done = 0;
  while (done < blob.length) {
    const n = readSync(fd, buf, done, blob.length - done, blob.offset + done);
    if (n === 0) throw Object.assign(new Error(`pack ${blob.packPath} is truncated`), { code: 'ARCA_CORRUPT' });
    done += n;
  }
  return buf;
}

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

function openForWrite(dest: Buffer): number {
  try {
    return openSync(dest, WRITE_FLAGS, 0o600);
  } catch (err) {
    // never write through a symlink that sits where the file goes: replace it
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      unlinkSync(dest);
      return openSync(dest, WRITE_FLAGS, 0o600);
    }
    throw err;
  }
}

function writeFile(msg: RestoreRequest): number {
  const dest = Buffer.from(msg.dest.buffer, msg.dest.byteOffset, msg.dest.byteLength);
  const fd = openForWrite(dest);
  let pos = 0;
  try {
    for (const blob of msg.blobs) {
      let plain: Buffer;
      try {
        plain = openBlob(blob.key, blob.id, blob.type as BlobType, blob.encoding as BlobEncoding, sealedBytes(blob), blob.rawLength);
        // the tag proves who wrote the blob; the ID proves what it holds (docs/security-model.md §6.6)
        if (!createHmac('sha256', macKey).update(plain).digest().equals(blob.id)) throw new Error('its content does not match its ID');
      } catch (err) {
        throw Object.assign(new Error(`blob ${Buffer.from(blob.id).toString('hex').slice(0, 12)} is damaged (${(err as Error).message})`), { code: 'ARCA_CORRUPT' });
      }
      let written = 0;
      while (written < plain.length) written += writeSync(fd, plain, written, plain.length - written, pos + written);
      pos += plain.length;
    }
    const { meta } = msg;
    if (meta.chown) fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, meta.mode);
    futimesSync(fd, meta.mtimeSec, meta.mtimeSec);
  } finally {
    closeSync(fd);
  }
  return pos;
}

parentPort!.on('message', (msg: RestoreRequest) => {
  try {
    const reply: RestoreResponse = { op: 'written', seq: msg.seq, bytes: writeFile(msg) };
    parentPort!.postMessage(reply);
  } catch (err) {
    parentPort!.postMessage(errorReply(msg.seq, err));
  }
});
