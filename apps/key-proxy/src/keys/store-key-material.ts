import { BlobKeyDeriver, deriveFileKey, deriveStoreKeys } from '@arca/crypto';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';

/**
 * The keys of one store derived from its master key, exactly as a passphrase store derives them
 * (libs/crypto key-hierarchy, docs/store-format.md §4): K_mac and K_cdc for agents, and K_data,
 * from which per-blob and per-file keys are derived on request. The master key itself is zeroed
 * as soon as these are derived and is never kept.
 *
 * The fast blob-key path (BlobKeyDeriver) keeps HKDF's PRK in a node:crypto KeyObject, which lives
 * in OpenSSL memory and cannot be wiped from JavaScript: destroy() drops the last reference so it
 * is freed, and wipes every Buffer it owns.
 */
export class StoreKeyMaterial {
  readonly org: string;
  readonly store: string;
  private readonly macKey: Buffer;
  private readonly chunkerKey: Buffer;
  private readonly dataKey: Buffer;
  private blobKeyDeriver: BlobKeyDeriver | undefined;

  private constructor(org: string, store: string, keys: { macKey: Buffer; chunkerKey: Buffer; dataKey: Buffer }) {
    this.org = org;
    this.store = store;
    this.macKey = keys.macKey;
    this.chunkerKey = keys.chunkerKey;
    this.dataKey = keys.dataKey;
    this.blobKeyDeriver = new BlobKeyDeriver(keys.dataKey);
  }

  /** Derives the store keys and zeroes `masterKey`, whatever happens. */
  static fromMasterKey(masterKey: Buffer, context: { org: string; store: string }): StoreKeyMaterial {
    try {
      if (masterKey.length !== 32) {
        throw new KeyProxyError(KeyProxyErrorCode.ProviderError, 'the KEK provider returned a master key of the wrong length');
      }
      return new StoreKeyMaterial(context.org, context.store, deriveStoreKeys(masterKey, Buffer.from(context.store, 'hex')));
    } finally {
      masterKey.fill(0);
    }
  }

  get destroyed(): boolean {
    return this.blobKeyDeriver === undefined;
  }

  /** K_mac and K_cdc, base64url. */
  agentKeys(): { macKey: string; chunkerKey: string } {
    this.assertAlive();
    return { macKey: this.macKey.toString('base64url'), chunkerKey: this.chunkerKey.toString('base64url') };
  }

  /** K_blob for each blob ID (64 lowercase hex, validated by the caller), base64url, same order. */
  blobKeys(blobIds: readonly string[]): string[] {
    const deriver = this.assertAlive();
    const out = new Array<string>(blobIds.length);
    const id = Buffer.allocUnsafe(32);
    for (let i = 0; i < blobIds.length; i++) {
      id.write(blobIds[i]!, 'hex');
      const key = deriver.derive(id);
      out[i] = key.toString('base64url');
      key.fill(0);
    }
    return out;
  }

  /** K_file for each (kind, keyId as 32 lowercase hex), base64url, same order. */
  fileKeys(files: ReadonlyArray<{ kind: number; keyId: string }>): string[] {
    this.assertAlive();
    return files.map(({ kind, keyId }) => {
      const key = deriveFileKey(this.dataKey, kind, Buffer.from(keyId, 'hex'));
      const text = key.toString('base64url');
      key.fill(0);
      return text;
    });
  }

  destroy(): void {
    this.macKey.fill(0);
    this.chunkerKey.fill(0);
    this.dataKey.fill(0);
    this.blobKeyDeriver = undefined;
  }

  private assertAlive(): BlobKeyDeriver {
    if (!this.blobKeyDeriver) throw new KeyProxyError(KeyProxyErrorCode.Internal, 'store keys were evicted during the request; retry');
    return this.blobKeyDeriver;
  }
}
