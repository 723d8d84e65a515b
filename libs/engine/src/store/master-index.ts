import { BlobEncoding, type BlobType, blobTypeName, parseBlobType } from '../format/blob-codec.ts';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';

/** Where a blob lives. */
export interface IndexEntry {
  packId: string;
  type: BlobType;
  encoding: BlobEncoding;
  offset: number;
  length: number;
  rawLength: number;
}

/** Plaintext of an `index/<id>` file (JSON, before zstd + sealing). */
export interface IndexFileContent {
  version: 1;
  /** index files whose content this one fully contains (written by prune; safe to delete after) */
  supersedes: string[];
  packs: { id: string; blobs: { id: string; type: 'data' | 'tree'; encoding: 'raw' | 'zstd'; offset: number; length: number; rawLength: number }[] }[];
}

/** The in-memory union of all index files: blob ID (hex) -> location. */
export class MasterIndex {
  private readonly blobs = new Map<string, IndexEntry>();
  private readonly packBlobs = new Map<string, number>();

  get size(): number {
    return this.blobs.size;
  }

  has(id: string): boolean {
    return this.blobs.has(id);
  }

  get(id: string): IndexEntry | undefined {
    return this.blobs.get(id);
  }

  add(id: string, entry: IndexEntry): void {
    if (!this.blobs.has(id)) {
      this.blobs.set(id, entry);
      this.packBlobs.set(entry.packId, (this.packBlobs.get(entry.packId) ?? 0) + 1);
    }
  }

  /** Take over another index's content in one synchronous step, so readers never see a half-built index. */
  replaceWith(other: MasterIndex): void {
    if (other === this) return;
    this.blobs.clear();
    this.packBlobs.clear();
    for (const [id, entry] of other.blobs) this.blobs.set(id, entry);
    for (const [packId, n] of other.packBlobs) this.packBlobs.set(packId, n);
  }

  packIds(): string[] {
    return [...this.packBlobs.keys()];
  }

  entries(): IterableIterator<[string, IndexEntry]> {
    return this.blobs.entries();
  }

  addFileContent(content: IndexFileContent, what: string): void {
    if (content.version !== 1 || !Array.isArray(content.packs)) throw new ArcaError(ArcaErrorCode.CorruptObject, `${what} is not a valid index`);
    for (const pack of content.packs) {
      for (const b of pack.blobs) this.add(b.id, indexEntryOf(pack.id, b));
    }
  }
}

/** An index file's JSON blob record as an in-memory entry. */
export function indexEntryOf(packId: string, b: IndexFileContent['packs'][number]['blobs'][number]): IndexEntry {
  return {
    packId,
    type: parseBlobType(b.type),
    encoding: b.encoding === 'zstd' ? BlobEncoding.Zstd : BlobEncoding.Raw,
    offset: b.offset,
    length: b.length,
    rawLength: b.rawLength,
  };
}

export function indexFileContent(packs: Map<string, { id: string; entry: IndexEntry }[]>, supersedes: string[] = []): IndexFileContent {
  return {
    version: 1,
    supersedes,
    packs: [...packs].map(([packId, blobs]) => ({
      id: packId,
      blobs: blobs.map(({ id, entry }) => ({
        id,
        type: blobTypeName(entry.type),
        encoding: entry.encoding === BlobEncoding.Zstd ? ('zstd' as const) : ('raw' as const),
        offset: entry.offset,
        length: entry.length,
        rawLength: entry.rawLength,
      })),
    })),
  };
}
