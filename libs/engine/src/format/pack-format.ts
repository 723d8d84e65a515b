import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import type { BlobEncoding, BlobType } from './blob-codec.ts';

/**
 * A pack: blob_1 || ... || blob_n || header || headerLength(u32 LE)
 * where header is a sealed file (kind PackHeader) whose plaintext is n fixed-size entries:
 *   type(u8) || encoding(u8) || id(32) || offset(u64 LE) || length(u32 LE) || rawLength(u32 LE)
 * The pack's name is the SHA-256 of all its bytes.
 */
export interface PackEntry {
  type: BlobType;
  encoding: BlobEncoding;
  id: Buffer;
  offset: number;
  length: number;
  rawLength: number;
}

export const PACK_ENTRY_BYTES = 1 + 1 + 32 + 8 + 4 + 4;

export function encodePackHeader(entries: readonly PackEntry[]): Buffer {
  const out = Buffer.allocUnsafe(entries.length * PACK_ENTRY_BYTES);
  let p = 0;
  for (const e of entries) {
    out[p] = e.type;
    out[p + 1] = e.encoding;
    e.id.copy(out, p + 2);
    out.writeBigUInt64LE(BigInt(e.offset), p + 34);
    out.writeUInt32LE(e.length, p + 42);
    out.writeUInt32LE(e.rawLength, p + 46);
    p += PACK_ENTRY_BYTES;
  }
  return out;
}

export function decodePackHeader(plain: Buffer, what: string): PackEntry[] {
  if (plain.length % PACK_ENTRY_BYTES !== 0) throw new ArcaError(ArcaErrorCode.CorruptObject, `${what}: pack header has a bad length`);
  const entries: PackEntry[] = [];
  for (let p = 0; p < plain.length; p += PACK_ENTRY_BYTES) {
    const type = plain[p]!;
    const encoding = plain[p + 1]!;
    if (type > 1 || encoding > 1) throw new ArcaError(ArcaErrorCode.CorruptObject, `${what}: unknown blob type or encoding in pack header`);
    entries.push({
      type: type as BlobType,
      encoding: encoding as BlobEncoding,
      id: Buffer.from(plain.subarray(p + 2, p + 34)),
      offset: Number(plain.readBigUInt64LE(p + 34)),
      length: plain.readUInt32LE(p + 42),
      rawLength: plain.readUInt32LE(p + 46),
    });
  }
  return entries;
}

export function packObjectName(packId: string): string {
  return `packs/${packId.slice(0, 2)}/${packId}`;
}
