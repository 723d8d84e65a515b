/** Plaintext of `snapshots/<id>` (JSON, before zstd + sealing). */
export interface BackupSummary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirs: number;
  /** files and directories that could not be read and were left out */
  skipped: number;
  dataBlobsNew: number;
  treeBlobsNew: number;
  /** bytes of file content read from the source */
  bytesRead: number;
  /** plaintext bytes of all files in the snapshot */
  bytesTotal: number;
  /** plaintext bytes of new blobs */
  bytesNew: number;
  /** bytes of new blobs as stored (compressed + encrypted) */
  bytesStored: number;
  durationMs: number;
}

export interface Snapshot {
  version: 1;
  time: string;
  tree: string;
  paths: string[];
  hostname: string;
  username: string;
  tags: string[];
  parent?: string;
  excludes?: string[];
  /**
   * Set by `sync` on a copy: the ID of the snapshot it copies (the first one, when copying a copy),
   * so a later sync recognises it and does not copy it again.
   */
  original?: string;
  programVersion: string;
  summary?: BackupSummary;
}

export interface SnapshotRecord {
  id: string;
  snapshot: Snapshot;
}
