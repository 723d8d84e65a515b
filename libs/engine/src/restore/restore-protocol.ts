/** Messages between the restorer and its file-writing workers. */
export interface RestoreBlob {
  /** local path of the pack (fs stores): the worker reads the sealed blob itself */
  packPath?: string;
  /** the sealed blob, fetched by the main thread (remote stores) */
  sealed?: Uint8Array;
  offset: number;
  length: number;
  id: Uint8Array;
  key: Uint8Array;
  type: number;
  encoding: number;
  rawLength: number;
}

export interface FileMeta {
  mode: number;
  uid: number;
  gid: number;
  mtimeSec: number;
  chown: boolean;
}

export type RestoreRequest = { op: 'writeFile'; seq: number; dest: Uint8Array; blobs: RestoreBlob[]; meta: FileMeta };

export type RestoreResponse = { op: 'written'; seq: number; bytes: number };
