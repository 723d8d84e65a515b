import { createHash } from 'node:crypto';
import os from 'node:os';
import { aeadOpen, aeadSeal, argon2id, AuthenticationError, defaultArgon2idParams, type Argon2idParams } from '@arca/crypto';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import type { StorageBackend } from '../backend/storage-backend.ts';
import { listAll } from '../backend/storage-backend.ts';
import { canonicalJson } from '../util/canonical-json.ts';
import { currentUserName } from '../util/os-user.ts';

/**
 * `keys/<id>`: the master key wrapped under Argon2id(passphrase). Several slots may exist (one per
 * person or machine); any one unlocks the store. The object name is the SHA-256 of its bytes.
 *
 *   { version: 1, created, host, user, label, kdf: Argon2idParams, wrappedKey: base64 }
 *   wrappedKey = AES-256-GCM(KEK, MK, AD = "arca/key-slot/v1" || storeId || canonicalJson(kdf))
 */
export interface KeySlotFile {
  version: 1;
  created: string;
  host: string;
  user: string;
  label: string;
  kdf: Argon2idParams;
  wrappedKey: string;
}

export interface KeySlotInfo {
  id: string;
  created: string;
  host: string;
  user: string;
  label: string;
}

const AD_PREFIX = Buffer.from('arca/key-slot/v1');

function slotAd(storeId: string, kdf: Argon2idParams): Buffer {
  return Buffer.concat([AD_PREFIX, Buffer.from(storeId, 'hex'), Buffer.from(canonicalJson(kdf))]);
}

export async function addKeySlot(
  backend: StorageBackend,
  storeId: string,
  masterKey: Uint8Array,
  passphrase: string,
  options: { label?: string; kdf?: Partial<Argon2idParams> } = {},
): Promise<string> {
  if (passphrase.length === 0) throw new ArcaError(ArcaErrorCode.InvalidArgument, 'an empty passphrase is not allowed');
  const kdf: Argon2idParams = { ...defaultArgon2idParams(), ...options.kdf };
  let kek: Buffer;
  try {
    kek = argon2id(passphrase, kdf);
  } catch (err) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, (err as Error).message, { hint: 'use at least 8192 KiB of memory and 1 iteration (the defaults are 65536 KiB and 3)' });
  }
  const file: KeySlotFile = {
    version: 1,
    created: new Date().toISOString(),
    host: os.hostname(),
    user: currentUserName(),
    label: options.label ?? '',
    kdf,
    wrappedKey: aeadSeal(kek, masterKey, slotAd(storeId, kdf)).toString('base64'),
  };
  kek.fill(0);
  const bytes = Buffer.from(JSON.stringify(file, null, 2));
  const id = createHash('sha256').update(bytes).digest('hex');
  await backend.put(`keys/${id}`, bytes);
  return id;
}

export async function listKeySlots(backend: StorageBackend): Promise<KeySlotInfo[]> {
  const out: KeySlotInfo[] = [];
  for (const obj of await listAll(backend, 'keys/')) {
    const id = obj.name.slice('keys/'.length);
    const file = parseSlot(await backend.get(obj.name), id);
    out.push({ id, created: file.created, host: file.host, user: file.user, label: file.label });
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}

/** Try every slot (or only `slotId`) and return the master key and the slot that opened it. */
export async function unlockMasterKey(
  backend: StorageBackend,
  storeId: string,
  passphrase: string,
  slotId?: string,
  accept: (masterKey: Buffer) => boolean = () => true,
): Promise<{ masterKey: Buffer; slotId: string }> {
  const names = slotId ? [`keys/${slotId}`] : (await listAll(backend, 'keys/')).map((o) => o.name);
  if (names.length === 0) throw new ArcaError(ArcaErrorCode.CorruptObject, 'the store has no key slots', { hint: 'restore the keys/ folder from a copy of the store' });
  for (const name of names) {
    const id = name.slice('keys/'.length);
    const file = parseSlot(await backend.get(name), id);
    const kek = argon2id(passphrase, file.kdf);
    try {
      const masterKey = aeadOpen(kek, Buffer.from(file.wrappedKey, 'base64'), slotAd(storeId, file.kdf));
      if (accept(masterKey)) return { masterKey, slotId: id };
      masterKey.fill(0);
    } catch (err) {
      if (!(err instanceof AuthenticationError)) throw err;
    } finally {
      kek.fill(0);
    }
  }
  throw new ArcaError(ArcaErrorCode.WrongPassphrase, 'wrong passphrase: no key slot of this store opens with it', {
    hint: 'check ARCA_PASSPHRASE / --passphrase-file; `arca key list` shows the slots of the store',
  });
}

export async function removeKeySlot(backend: StorageBackend, slotId: string, currentSlotId: string): Promise<void> {
  const slots = await listAll(backend, 'keys/');
  const match = slots.filter((s) => s.name.slice(5).startsWith(slotId));
  if (match.length !== 1) throw new ArcaError(ArcaErrorCode.KeyNotFound, `no single key slot matches ${slotId}`, { hint: 'see `arca key list`' });
  const name = match[0]!.name;
  if (slots.length === 1) throw new ArcaError(ArcaErrorCode.LastKey, 'refusing to remove the last key slot: the store would become unreadable');
  if (name === `keys/${currentSlotId}`) {
    throw new ArcaError(ArcaErrorCode.InvalidArgument, 'refusing to remove the key slot used to open the store', { hint: 'open the store with another passphrase first' });
  }
  await backend.delete(name);
}

function parseSlot(bytes: Buffer, id: string): KeySlotFile {
  if (createHash('sha256').update(bytes).digest('hex') !== id) {
    throw new ArcaError(ArcaErrorCode.CorruptObject, `key slot ${id.slice(0, 8)} does not match its name (damaged)`);
  }
  const file = JSON.parse(bytes.toString('utf8')) as KeySlotFile;
  if (file.version !== 1) throw new ArcaError(ArcaErrorCode.UnsupportedFormat, `key slot ${id.slice(0, 8)} has unsupported version ${String(file.version)}`);
  return file;
}

