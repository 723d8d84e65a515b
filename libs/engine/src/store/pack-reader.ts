import { AuthenticationError } from '@arca/crypto';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { decodePackHeader, packObjectName, type PackEntry } from '../format/pack-format.ts';
import { FileKind, openFile, readFileKeyRef } from '../format/sealed-file.ts';
import type { Store } from './store.ts';

/** Decrypt and decode a pack's header (the sealed bytes between the blobs and the u32 trailer). */
export async function openPackHeader(store: Store, sealed: Buffer, name: string): Promise<PackEntry[]> {
  const ref = readFileKeyRef(sealed, FileKind.PackHeader, name);
  const [key] = await store.keys.fileKeys([ref], 'read');
  let plain: Buffer;
  try {
    plain = openFile(ref, key!, sealed);
  } catch (err) {
    if (err instanceof AuthenticationError) throw new ArcaError(ArcaErrorCode.CorruptObject, 'authentication failed', { cause: err });
    throw new ArcaError(ArcaErrorCode.CorruptObject, `cannot be decoded (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  return decodePackHeader(plain, name);
}

/** The header of a whole pack held in memory; `headerStart` is where the blobs end. */
export async function readPackHeaderFromBytes(store: Store, bytes: Buffer, name: string): Promise<{ entries: PackEntry[]; headerStart: number }> {
  if (bytes.length < 4) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} is too short to be a pack`);
  const headerLength = bytes.readUInt32LE(bytes.length - 4);
  if (headerLength + 4 > bytes.length) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name}: header length ${headerLength} exceeds the pack`);
  const headerStart = bytes.length - 4 - headerLength;
  return { entries: await openPackHeader(store, bytes.subarray(headerStart, bytes.length - 4), name), headerStart };
}

/** The header of a pack in the store, read with two range requests (trailer, then header). */
export async function readPackHeader(store: Store, packId: string, packSize: number): Promise<PackEntry[]> {
  const name = packObjectName(packId);
  if (packSize < 4) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} is too short to be a pack`);
  const headerLength = (await store.backend.getRange(name, packSize - 4, 4)).readUInt32LE(0);
  if (headerLength + 4 > packSize) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name}: header length ${headerLength} exceeds the pack`);
  const sealed = await store.backend.getRange(name, packSize - 4 - headerLength, headerLength);
  const entries = await openPackHeader(store, sealed, name);
  const end = packSize - 4 - headerLength;
  if (entries.some((e) => e.offset + e.length > end)) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name}: a header entry points past the blobs`);
  return entries;
}
