export { ArcaError, ArcaErrorCode, isArcaError } from './errors/arca-error.ts';
export type { StorageBackend, ObjectInfo } from './backend/storage-backend.ts';
export { listAll } from './backend/storage-backend.ts';
export { FsBackend } from './backend/fs-backend.ts';
export { MemBackend } from './backend/mem-backend.ts';
export { S3Backend, parseS3Url } from './backend/s3-backend.ts';
export { openBackend } from './backend/open-backend.ts';
export { FastCdc, DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from './chunker/fastcdc.ts';
export { BlobType, BlobEncoding } from './format/blob-codec.ts';
export type { KeyProvider, KeyPurpose } from './keys/key-provider.ts';
export { LocalKeyProvider } from './keys/key-provider.ts';
export { addKeySlot, listKeySlots, removeKeySlot, type KeySlotInfo } from './keys/key-slots.ts';
export { RemoteKeyProvider, MAX_KEYS_PER_REQUEST, type RemoteKeyProviderOptions, type RemoteKeyProviderStats } from './keys/remote-key-provider.ts';
export {
  KeyProxyClient, KeyProxyRequestError, decodeJobToken, normalizeKeyProxyUrl, DEFAULT_RETRY_BUDGET_MS, type JobTokenInfo, type KeyProxyClientOptions,
} from './keys/key-proxy-client.ts';
export { initManagedStore, openManagedStore, type KeyProxyConnection, type ManagedInitOptions } from './keys/managed-store.ts';
export { Store, type InitOptions, type OpenOptions } from './store/store.ts';
export type { StoreConfig } from './store/store-config.ts';
export { acquireLock, listLocks, removeLocks, LOCK_STALE_MS, LOCK_REFRESH_MS } from './store/lock-manager.ts';
export type { Snapshot, SnapshotRecord, BackupSummary } from './snapshot/snapshot.ts';
export type { Tree, TreeNode, NodeType } from './snapshot/tree.ts';
export { rawName } from './snapshot/tree.ts';
export { loadTree, findNode, walkTree, type WalkEntry } from './snapshot/tree-io.ts';
export { listSnapshots, findSnapshots, resolveSnapshot, type SnapshotFilter } from './snapshot/snapshot-io.ts';
export { ExcludeRules } from './backup/exclude-rules.ts';
export {
  backup, backupStream, streamSourcePath, type BackupOptions, type BackupCommonOptions, type StreamBackupOptions, type BackupProgress, type BackupResult, type BackupWarning,
} from './backup/backup-runner.ts';
export { spawnCommandSource, type CommandSource, type CommandSourceOptions } from './backup/command-source.ts';
export { restore, type RestoreOptions, type RestoreProgress, type RestoreResult } from './restore/restorer.ts';
export { ENGINE_VERSION } from './version.ts';
export { check, type CheckOptions, type CheckProgress, type CheckResult, type CheckError, type DamagedBlob } from './check/checker.ts';
export {
  applyRetention,
  forget,
  forgetSnapshots,
  groupSnapshots,
  isoWeek,
  validatePolicy,
  type RetentionPolicy,
  type RetentionDecision,
  type SnapshotGroup,
  type ForgetOptions,
  type ForgetResult,
} from './retention/forget-policy.ts';
export { prune, type PruneOptions, type PruneProgress, type PruneResult, type PruneStep } from './retention/pruner.ts';
export { diffSnapshots, diffStats, type SnapshotChange, type ChangeKind, type DiffStats } from './diff/snapshot-diff.ts';
export { findInSnapshots, compileFindPatterns, type FindMatch } from './find/snapshot-find.ts';
export { compileGlob, globMatch } from './find/glob.ts';
export { repairIndex, type RepairIndexOptions, type RepairIndexResult } from './check/repair-index.ts';
export { sync, originalId, type SyncOptions, type SyncProgress, type SyncResult, type SyncCopy } from './sync/snapshot-sync.ts';
export { verifyRestore, type VerifyRestoreOptions, type VerifyRestoreResult, type VerifyProgress, type VerifyMismatch } from './verify/restore-verifier.ts';
