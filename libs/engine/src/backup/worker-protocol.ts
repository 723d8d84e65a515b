import type { ChunkHints } from '../chunker/hinted-chunking.ts';
import type { BlobEncoding } from '../format/blob-codec.ts';

/**
 * Messages between the backup runner and its blob workers. Workers read files themselves, so the
 * main thread never touches file content: it walks, deduplicates, fetches keys and writes packs.
 */
export type WorkerRequest =
  /** read, chunk and hash whole (small) files; the data stays in the worker until seal/drop */
  | { op: 'hashFiles'; seq: number; paths: Uint8Array[] }
  /**
   * read up to `length` bytes of a file at `offset`, chunk and hash the complete chunks; with
   * `hints` (the previous version's chunks), unchanged chunks are confirmed by ID without the
   * gear loop (chunker/hinted-chunking.ts)
   */
  | { op: 'hashSegment'; seq: number; path: Uint8Array; offset: number; length: number; hints?: ChunkHints }
  /**
   * chunk and hash bytes of a stream (transferred, not copied), as hashSegment does with the bytes
   * it reads; `eof`: no more bytes follow. The reply's `rest` returns the bytes after the last
   * final chunk, which start the next segment.
   */
  | { op: 'hashData'; seq: number; data: Uint8Array; eof: boolean; hints?: ChunkHints }
  /** compress + encrypt chunks of a hashed batch (indices into its flat chunk list) */
  | { op: 'seal'; seq: number; indices: number[]; ids: Uint8Array[]; keys: Uint8Array[]; type: number }
  | { op: 'drop'; seq: number };

export type FileHashResult =
  | { ok: true; size: number; chunks: number }
  | { ok: false; code: string | undefined; message: string };

export type WorkerResponse =
  /** `ids` holds 32 bytes per chunk, files in order */
  | { op: 'hashedFiles'; seq: number; files: FileHashResult[]; ids: Uint8Array }
  | { op: 'hashedSegment'; seq: number; chunks: number; consumed: number; eof: boolean; bytesRead: number; ids: Uint8Array; rest?: Uint8Array }
  /** sealed blobs in request order, each at `offset` in `parts[part]` (transferred buffers) */
  | { op: 'sealed'; seq: number; parts: Uint8Array[]; blobs: { encoding: BlobEncoding; rawLength: number; part: number; offset: number; length: number }[] };
