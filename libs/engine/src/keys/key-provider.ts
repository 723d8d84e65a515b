import { BlobKeyDeriver, deriveFileKey, type AgentKeys, type StoreKeys } from '@arca/crypto';
import type { FileKeyRef } from '../format/sealed-file.ts';

/** Why keys are requested: a key proxy issues write keys only to backup-class jobs. */
export type KeyPurpose = 'read' | 'write';

/**
 * Where the engine gets its keys. The engine itself never sees the master key or K_data when the
 * provider is remote (the key proxy): it only receives the agent keys and per-object keys, in
 * batches.
 */
export interface KeyProvider {
  readonly agentKeys: AgentKeys;
  blobKeys(ids: readonly Buffer[], purpose: KeyPurpose): Promise<Buffer[]>;
  fileKeys(refs: readonly FileKeyRef[], purpose: KeyPurpose): Promise<Buffer[]>;
  /**
   * A hint that these blob keys will be asked for soon (restore: the files of a directory), so a
   * remote provider can fetch them in one request instead of one per file. Never throws.
   */
  prefetchBlobKeys?(ids: readonly Buffer[], purpose: KeyPurpose): void;
  /** Forget (zero) every key held; called when the store is no longer used. */
  close?(): Promise<void>;
}

/** Derives every key locally from the store keys (standalone mode: unlocked with a passphrase). */
export class LocalKeyProvider implements KeyProvider {
  readonly agentKeys: AgentKeys;
  private readonly dataKey: Buffer;
  private readonly blobKeyDeriver: BlobKeyDeriver;

  constructor(keys: StoreKeys) {
    this.agentKeys = { macKey: keys.macKey, chunkerKey: keys.chunkerKey };
    this.dataKey = keys.dataKey;
    this.blobKeyDeriver = new BlobKeyDeriver(keys.dataKey);
  }

  async blobKeys(ids: readonly Buffer[]): Promise<Buffer[]> {
    return ids.map((id) => this.blobKeyDeriver.derive(id));
  }

  async fileKeys(refs: readonly FileKeyRef[]): Promise<Buffer[]> {
    return refs.map((r) => deriveFileKey(this.dataKey, r.kind, r.keyId));
  }
}
