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
