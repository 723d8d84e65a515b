import type { BlobEncoding } from '../format/blob-codec.ts';

export type WorkerRequest =
  | { op: 'hash'; seq: number; data: Uint8Array; lengths: number[] }
  | { op: 'seal'; seq: number; indices: number[]; ids: Uint8Array[]; keys: Uint8Array[]; type: number }
  | { op: 'drop'; seq: number };

export type WorkerResponse =
  | { op: 'hashed'; seq: number; ids: Uint8Array }
  | { op: 'sealed'; seq: number; sealed: { encoding: BlobEncoding; rawLength: number; bytes: Uint8Array }[] }
  | { op: 'error'; seq: number; message: string };
