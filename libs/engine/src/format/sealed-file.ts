import { randomBytes } from 'node:crypto';
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { aeadOpen, aeadSeal, FILE_KEY_ID_BYTES } from '@arca/crypto';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';

/**
 * A sealed file: every store object except `config`, `keys/*` and pack bodies.
 *
 *   "ARCA"(4) || version(u8 = 1) || kind(u8) || keyId(16) || nonce(12) || ciphertext || tag(16)
 *
 * key = K_file = HKDF(K_data, "arca/file/v1" || kind || keyId); the 22-byte header is the AEAD's
 * associated data; the plaintext is zstd-compressed.
 */
export const FileKind = { PackHeader: 1, Index: 2, Snapshot: 3, Lock: 4 } as const;
export type FileKind = (typeof FileKind)[keyof typeof FileKind];

const MAGIC = Buffer.from('ARCA');
const VERSION = 1;
export const SEALED_HEADER_BYTES = 4 + 1 + 1 + FILE_KEY_ID_BYTES;

export interface FileKeyRef {
  kind: FileKind;
  keyId: Buffer;
}

export function newFileKeyRef(kind: FileKind): FileKeyRef {
  return { kind, keyId: randomBytes(FILE_KEY_ID_BYTES) };
}

function header(ref: FileKeyRef): Buffer {
  return Buffer.concat([MAGIC, Buffer.of(VERSION, ref.kind), ref.keyId]);
}

export function sealFile(ref: FileKeyRef, key: Uint8Array, plaintext: Uint8Array): Buffer {
  const head = header(ref);
  const compressed = zstdCompressSync(plaintext, { params: { [constants.ZSTD_c_compressionLevel]: 3 } });
  return Buffer.concat([head, aeadSeal(key, compressed, head)]);
}

/** Parse the header of a sealed file without decrypting it (to ask for its key). */
export function readFileKeyRef(sealed: Uint8Array, expectedKind: FileKind, what: string): FileKeyRef {
  if (sealed.length < SEALED_HEADER_BYTES || !Buffer.from(sealed.subarray(0, 4)).equals(MAGIC)) {
    throw new ArcaError(ArcaErrorCode.CorruptObject, `${what} is not an Arca object (bad magic or truncated)`);
  }
  if (sealed[4] !== VERSION) {
    throw new ArcaError(ArcaErrorCode.UnsupportedFormat, `${what} has format version ${sealed[4]}, this arca reads version ${VERSION}`, {
      hint: 'upgrade arca',
    });
  }
  if (sealed[5] !== expectedKind) throw new ArcaError(ArcaErrorCode.CorruptObject, `${what} is of kind ${sealed[5]}, expected ${expectedKind}`);
  return { kind: expectedKind, keyId: Buffer.from(sealed.subarray(6, SEALED_HEADER_BYTES)) };
}

export function openFile(ref: FileKeyRef, key: Uint8Array, sealed: Uint8Array): Buffer {
  const head = header(ref);
  const compressed = aeadOpen(key, sealed.subarray(SEALED_HEADER_BYTES), head);
  return zstdDecompressSync(compressed);
}
