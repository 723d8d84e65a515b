import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { listAll } from '../backend/storage-backend.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { FileKind, newFileKeyRef, sealFile } from '../format/sealed-file.ts';
import type { Store } from './store.ts';
import { currentUserName } from '../util/os-user.ts';

/**
 * Store locks (`locks/<id>`, sealed). Backup, restore and check take shared locks; prune takes an
 * exclusive lock. A holder rewrites its lock every REFRESH_MS; a lock whose time is older than
 * STALE_MS, or whose holder is a dead process on this host, is stale and ignored (and removed by
 * `arca unlock`). See docs/store-format.md "Locks".
 */
export const LOCK_REFRESH_MS = 5 * 60 * 1000;
export const LOCK_STALE_MS = 30 * 60 * 1000;

export interface LockContent {
  exclusive: boolean;
  time: string;
  hostname: string;
  username: string;
  pid: number;
  operation: string;
}

export interface LockInfo {
  name: string;
  content: LockContent | undefined;
  stale: boolean;
}

export class LockHandle {
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  private readonly store: Store;
  private name: string;
  private readonly content: LockContent;

  constructor(store: Store, name: string, content: LockContent) {
    this.store = store;
    this.name = name;
    this.content = content;
    this.timer = setInterval(() => {
      this.refreshing = this.refresh().catch(() => {
        // the store is unreachable: keep the old lock; it goes stale only after LOCK_STALE_MS
      });
    }, LOCK_REFRESH_MS);
    this.timer.unref();
  }

  private refreshing: Promise<void> = Promise.resolve();

  private async refresh(): Promise<void> {
    if (this.released) return;
    const old = this.name;
    const fresh = await writeLock(this.store, { ...this.content, time: new Date().toISOString() });
    if (this.released) {
      // release() ran while we were writing: do not leave the new lock behind
      await this.store.backend.delete(fresh).catch(() => undefined);
      return;
    }
    this.name = fresh;
    await this.store.backend.delete(old).catch(() => undefined);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.refreshing;
    await this.store.backend.delete(this.name);
  }
}

async function writeLock(store: Store, content: LockContent): Promise<string> {
  // Lock names are random, not content hashes: a lock is rewritten while held.
  const name = `locks/${randomBytes(32).toString('hex')}`;
  const ref = newFileKeyRef(FileKind.Lock);
  const [key] = await store.keys.fileKeys([ref], 'read');
  await store.backend.put(name, sealFile(ref, key!, Buffer.from(JSON.stringify(content))));
  return name;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function listLocks(store: Store, now = Date.now()): Promise<LockInfo[]> {
  const out: LockInfo[] = [];
  for (const obj of await listAll(store.backend, 'locks/')) {
    let content: LockContent | undefined;
    try {
      content = await store.readSealedFile<LockContent>(obj.name, FileKind.Lock);
    } catch {
      content = undefined; // unreadable: treated as held, never silently ignored
    }
    const stale =
      content !== undefined &&
      (now - Date.parse(content.time) > LOCK_STALE_MS || (content.hostname === os.hostname() && content.pid !== process.pid && !processAlive(content.pid)));
    out.push({ name: obj.name, content, stale });
  }
  return out;
}

function describe(lock: LockInfo): string {
  if (!lock.content) return `${lock.name} (unreadable)`;
  const c = lock.content;
  return `${c.exclusive ? 'exclusive' : 'shared'} lock for ${c.operation} by ${c.username}@${c.hostname} pid ${c.pid} since ${c.time}`;
}

export async function acquireLock(store: Store, exclusive: boolean, operation: string): Promise<LockHandle> {
  const conflicts = (locks: LockInfo[], ours?: string) =>
    locks.filter((l) => l.name !== ours && !l.stale && (exclusive || l.content === undefined || l.content.exclusive));
  const before = conflicts(await listLocks(store));
  if (before.length > 0) throw lockedError(before[0]!);
  const content: LockContent = {
    exclusive,
    time: new Date().toISOString(),
    hostname: os.hostname(),
    username: currentUserName(),
    pid: process.pid,
    operation,
  };
  const name = await writeLock(store, content);
  // Re-check: another process may have locked between our list and our write.
  const after = conflicts(await listLocks(store), name);
  if (after.length > 0) {
    await store.backend.delete(name);
    throw lockedError(after[0]!);
  }
  return new LockHandle(store, name, content);
}

function lockedError(lock: LockInfo): ArcaError {
  return new ArcaError(ArcaErrorCode.Locked, `the store is locked: ${describe(lock)}`, {
    hint: 'wait for that operation to finish; if its process is gone, `arca unlock` removes stale locks (`--remove-all` removes every lock)',
  });
}

/** Remove stale locks (or all locks). Returns the names removed. */
export async function removeLocks(store: Store, all: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (const lock of await listLocks(store)) {
    if (all || lock.stale) {
      await store.backend.delete(lock.name);
      removed.push(lock.name);
    }
  }
  return removed;
}

