import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ArcaError, ArcaErrorCode, fromSystemError } from '../errors/arca-error.ts';
import type { ObjectData, ObjectInfo, StorageBackend } from './storage-backend.ts';
import type { FileHandle } from 'node:fs/promises';

const TEMP_SUFFIX = '.tmp';

/**
 * A store on a local (or mounted) filesystem. Writes are atomic and durable: temp file in the same
 * directory, fsync, rename, fsync of the directory — the pattern pnpm's store and restic use.
 */
export class FsBackend implements StorageBackend {
  readonly location: string;
  private readonly root: string;
  private readonly knownDirs = new Set<string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  private resolve(name: string): string {
    if (name.includes('..') || name.startsWith('/')) throw new ArcaError(ArcaErrorCode.InvalidArgument, `invalid object name: ${name}`);
    return path.join(this.root, name);
  }

  async put(name: string, data: ObjectData): Promise<void> {
    const target = this.resolve(name);
    const dir = path.dirname(target);
    try {
      if (!this.knownDirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.knownDirs.add(dir);
      }
      const temp = `${target}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
      const fh = await open(temp, 'wx', 0o600);
      try {
        if (data instanceof Uint8Array) await fh.writeFile(data);
        else await writeAll(fh, data);
        await fh.sync();
      } catch (err) {
        await fh.close();
        await unlink(temp).catch(() => undefined);
        throw err;
      }
      await fh.close();
      await rename(temp, target);
      await syncDir(dir);
    } catch (err) {
      throw fromSystemError(err, name);
    }
  }

  async get(name: string): Promise<Buffer> {
    try {
      return await readFile(this.resolve(name));
    } catch (err) {
      throw notFoundOr(err, name);
    }
  }

  /**
   * Range reads serve trees and single blobs: small reads of immutable objects, often many from the
   * same pack. They use cached descriptors and synchronous reads, which cost a few microseconds
   * from the page cache where a promise-based open/read/close costs ~0.1 ms. (Objects are never
   * modified in place, so a cached descriptor always reads the object's one content.)
   */
  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    const fd = this.rangeFd(name);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    if (done !== length) {
      throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} is truncated: wanted ${length} bytes at offset ${offset}, got ${done}`);
    }
    return buf;
  }

  private readonly fds = new Map<string, number>();

  private rangeFd(name: string): number {
    const cached = this.fds.get(name);
    if (cached !== undefined) {
      this.fds.delete(name);
      // deleted meanwhile (by prune, or by hand): never read a vanished object through an old descriptor
      if (fstatSync(cached).nlink === 0) closeSync(cached);
      else {
        this.fds.set(name, cached); // most recently used last
        return cached;
      }
    }
    let fd: number;
    try {
      fd = openSync(this.resolve(name), 'r');
    } catch (err) {
      throw notFoundOr(err, name);
    }
    this.fds.set(name, fd);
    if (this.fds.size > MAX_CACHED_FDS) {
      const [oldest, oldFd] = this.fds.entries().next().value as [string, number];
      this.fds.delete(oldest);
      closeSync(oldFd);
    }
    return fd;
  }

  async stat(name: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await stat(this.resolve(name));
      return { name, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const base = this.resolve(prefix);
    yield* this.walk(base, prefix.replace(/\/$/, ''));
  }

  private async *walk(dir: string, rel: string): AsyncIterable<ObjectInfo> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        yield* this.walk(path.join(dir, entry.name), childRel);
      } else if (entry.isFile() && !entry.name.endsWith(TEMP_SUFFIX)) {
        const st = await stat(path.join(dir, entry.name)).catch(() => undefined);
        if (st) yield { name: childRel, size: st.size };
      }
    }
  }

  localPath(name: string): string {
    return this.resolve(name);
  }

  async delete(name: string): Promise<void> {
    const fd = this.fds.get(name);
    if (fd !== undefined) {
      this.fds.delete(name);
      closeSync(fd);
    }
    await rm(this.resolve(name), { force: true });
  }

  async close(): Promise<void> {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

const MAX_CACHED_FDS = 32;

async function writeAll(fh: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  const queue = parts.filter((p) => p.length > 0);
  let next = 0;
  while (next < queue.length) {
    let { bytesWritten } = await fh.writev(queue.slice(next, next + 1024));
    // skip what was written; a short write leaves the rest of a part at the front
    while (bytesWritten > 0) {
      const part = queue[next]!;
      if (bytesWritten >= part.length) {
        bytesWritten -= part.length;
        next++;
      } else {
        queue[next] = part.subarray(bytesWritten);
        bytesWritten = 0;
      }
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    await fh.close();
  }
}

function notFoundOr(err: unknown, name: string): unknown {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new ArcaError(ArcaErrorCode.BlobNotFound, `object ${name} does not exist in the store`, { cause: err });
  }
  return err;
}
