import { createHash } from 'node:crypto';
import type { BlobType, SealedBlob } from '../format/blob-codec.ts';
import { encodePackHeader, packObjectName, type PackEntry } from '../format/pack-format.ts';
import { FileKind, newFileKeyRef, sealFile } from '../format/sealed-file.ts';
import type { Store } from './store.ts';

/**
 * Accumulates sealed blobs of one type into a pack and uploads it when it reaches the store's pack
 * size. Data and tree blobs go to separate packs so that reading trees never downloads file data.
 */
export class PackWriter {
  private parts: Buffer[] = [];
  private entries: PackEntry[] = [];
  private bytes = 0;
  /** SHA-256 of the pack so far: the pack's name, computed as blobs arrive */
  private hash = createHash('sha256');

  private readonly store: Store;
  private readonly type: BlobType;

  constructor(store: Store, type: BlobType) {
    this.store = store;
    this.type = type;
  }

  /** Add a sealed blob; resolves once the blob is buffered (and its pack handed to upload if full). */
  async add(id: Buffer, sealed: SealedBlob): Promise<void> {
    this.entries.push({ type: this.type, encoding: sealed.encoding, id, offset: this.bytes, length: sealed.bytes.length, rawLength: sealed.rawLength });
    this.parts.push(sealed.bytes);
    this.hash.update(sealed.bytes);
    this.bytes += sealed.bytes.length;
    if (this.bytes >= this.store.config.packSize) await this.flush();
  }

  /** Seal the header and hand the pack to the store's uploader (as parts: no copy into one buffer). */
  async flush(): Promise<void> {
    if (this.entries.length === 0) return;
    const { parts, entries, hash } = this;
    this.parts = [];
    this.entries = [];
    this.bytes = 0;
    this.hash = createHash('sha256');
    const ref = newFileKeyRef(FileKind.PackHeader);
    const [key] = await this.store.keys.fileKeys([ref], 'write');
    const header = sealFile(ref, key!, encodePackHeader(entries));
    const trailer = Buffer.allocUnsafe(4);
    trailer.writeUInt32LE(header.length, 0);
    parts.push(header, trailer);
    const packId = hash.update(header).update(trailer).digest('hex');
    await this.store.uploadPack(packId, packObjectName(packId), parts, entries);
  }
}
