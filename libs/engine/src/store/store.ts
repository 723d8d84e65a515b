import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { AuthenticationError, deriveStoreKeys, type StoreKeys, generateMasterKey, type Argon2idParams } from '@arca/crypto';
import type { StorageBackend } from '../backend/storage-backend.ts';
import { listAll } from '../backend/storage-backend.ts';
import { ArcaError, ArcaErrorCode, isArcaError } from '../errors/arca-error.ts';
import { BlobType, blobTypeName, openBlob, sealBlob } from '../format/blob-codec.ts';
import type { PackEntry } from '../format/pack-format.ts';
import { packObjectName } from '../format/pack-format.ts';
import { FileKind, newFileKeyRef, openFile, readFileKeyRef, sealFile } from '../format/sealed-file.ts';
import type { KeyProvider, KeyPurpose } from '../keys/key-provider.ts';
import { LocalKeyProvider } from '../keys/key-provider.ts';
import { addKeySlot, unlockMasterKey } from '../keys/key-slots.ts';
import { Semaphore } from '../util/semaphore.ts';
import { indexFileContent, MasterIndex, type IndexEntry, type IndexFileContent } from './master-index.ts';
import { PackWriter } from './pack-writer.ts';
import { newStoreConfig, parseConfig, signConfig, verifyConfig, type StoreConfig } from './store-config.ts';
import type { ChunkerParams } from '../chunker/fastcdc.ts';

export interface InitOptions {
  passphrase: string;
  chunker?: ChunkerParams;
  packSize?: number;
  zstdLevel?: number;
  kdf?: Partial<Argon2idParams>;
}

export interface OpenOptions {
  passphrase: string;
  keySlot?: string;
}

const PACK_UPLOAD_CONCURRENCY = 2;
const TREE_ID_PREFIX = Buffer.from('arca/tree/v1\0');
/** Write an index file after this many packs, so an interrupted backup keeps what it uploaded. */
const INDEX_FLUSH_PACKS = 32;

/** An open, unlocked Arca store. */
export class Store {
  readonly index = new MasterIndex();
  /** blobs sealed into a pack that is not yet uploaded and indexed */
  private readonly inFlight = new Set<string>();
  private pendingIndex = new Map<string, { id: string; entry: IndexEntry }[]>();
  /** pending index content whose index file is being written right now */
  private readonly indexWrites = new Set<Map<string, { id: string; entry: IndexEntry }[]>>();
  /** one per running loadIndex: collects index content written while it lists and reads */
  private readonly indexLoads = new Set<MasterIndex>();
  private pendingPacks = 0;
  private readonly uploads = new Semaphore(PACK_UPLOAD_CONCURRENCY);
  private readonly uploadPromises = new Set<Promise<void>>();
  private uploadError: unknown;
  private readonly treeCache = new Map<string, Buffer>();
  readonly writers: Record<'data' | 'tree', PackWriter>;

  readonly backend: StorageBackend;
  readonly config: StoreConfig;
  readonly keys: KeyProvider;
  /** the key slot that unlocked the store (standalone mode) */
  readonly keySlotId: string | undefined;
  private readonly macKeyObject: KeyObject;

  private constructor(backend: StorageBackend, config: StoreConfig, keys: KeyProvider, keySlotId: string | undefined) {
    this.backend = backend;
    this.config = config;
    this.keys = keys;
    this.keySlotId = keySlotId;
    this.macKeyObject = createSecretKey(keys.agentKeys.macKey);
    this.writers = { data: new PackWriter(this, BlobType.Data), tree: new PackWriter(this, BlobType.Tree) };
  }

  static async init(backend: StorageBackend, options: InitOptions): Promise<Store> {
    if (await backend.stat('config')) {
      throw new ArcaError(ArcaErrorCode.StoreExists, `a store already exists at ${backend.location}`, { hint: 'use it as it is, or choose another location' });
    }
    const config = newStoreConfig(options);
    const masterKey = generateMasterKey();
    const storeKeys = deriveStoreKeys(masterKey, Buffer.from(config.id, 'hex'));
    const slotId = await addKeySlot(backend, config.id, masterKey, options.passphrase, { kdf: options.kdf ?? {} });
    masterKey.fill(0);
    const signed = signConfig(config, storeKeys.macKey);
    // config last: a store without config is not a store, so a crash during init leaves nothing usable
    await backend.put('config', Buffer.from(JSON.stringify(signed, null, 2)));
    return new Store(backend, signed, new LocalKeyProvider(storeKeys), slotId);
  }

  /**
   * Create a store whose keys come from `keys` (a key proxy, see keys/managed-store.ts): signs
   * `config` with the provider's K_mac and writes it, last.
   */
  static async initWithProvider(backend: StorageBackend, config: StoreConfig, keys: KeyProvider): Promise<Store> {
    if (await backend.stat('config')) {
      throw new ArcaError(ArcaErrorCode.StoreExists, `a store already exists at ${backend.location}`, { hint: 'use it as it is, or choose another location' });
    }
    const signed = signConfig(config, keys.agentKeys.macKey);
    await backend.put('config', Buffer.from(JSON.stringify(signed, null, 2)));
    return new Store(backend, signed, keys, undefined);
  }

  static async readConfig(backend: StorageBackend): Promise<StoreConfig> {
    let bytes: Buffer;
    try {
      bytes = await backend.get('config');
    } catch (err) {
      if (isArcaError(err, ArcaErrorCode.BlobNotFound)) {
        throw new ArcaError(ArcaErrorCode.StoreNotFound, `no Arca store at ${backend.location}`, {
          hint: 'check --store / ARCA_STORE, or create one with `arca init`',
        });
      }
      throw err;
    }
    return parseConfig(bytes);
  }

  static async open(backend: StorageBackend, options: OpenOptions): Promise<Store> {
    const config = await Store.readConfig(backend);
    if (config.keyCustody.type !== 'passphrase') {
      throw new ArcaError(ArcaErrorCode.UnsupportedFormat, 'this store is managed by a key proxy', { hint: 'open it with the key proxy settings' });
    }
    const storeIdBytes = Buffer.from(config.id, 'hex');
    let storeKeys: StoreKeys | undefined;
    // A slot that decrypts but yields keys that do not authenticate the config is not ours (an
    // attacker may have added it): keep trying the others.
    const { slotId } = await unlockMasterKey(backend, config.id, options.passphrase, options.keySlot, (masterKey) => {
      const keys = deriveStoreKeys(masterKey, storeIdBytes);
      try {
        verifyConfig(config, keys.macKey);
        storeKeys = keys;
        return true;
      } catch {
        return false;
      }
    });
    return new Store(backend, config, new LocalKeyProvider(storeKeys!), slotId);
  }

  /** Open with an external key provider (a key proxy): the engine never sees the master key. */
  static async openWithProvider(backend: StorageBackend, keys: KeyProvider): Promise<Store> {
    const config = await Store.readConfig(backend);
    verifyConfig(config, keys.agentKeys.macKey);
    return new Store(backend, config, keys, undefined);
  }

  /** Re-read the master key for key-slot management (standalone stores only). */
  async masterKeyFor(passphrase: string): Promise<Buffer> {
    const storeIdBytes = Buffer.from(this.config.id, 'hex');
    const accept = (mk: Buffer) => {
      try {
        verifyConfig(this.config, deriveStoreKeys(mk, storeIdBytes).macKey);
        return true;
      } catch {
        return false;
      }
    };
    return (await unlockMasterKey(this.backend, this.config.id, passphrase, undefined, accept)).masterKey;
  }

  /**
   * Blob ID = HMAC-SHA256(K_mac, plaintext) for data, HMAC-SHA256(K_mac, "arca/tree/v1\0" ||
   * plaintext) for trees: the prefix keeps the two ID spaces apart, so a file whose content equals
   * a tree's encoding can never be confused with that tree.
   */
  blobId(plaintext: Uint8Array, type: BlobType = BlobType.Data): Buffer {
    const mac = createHmac('sha256', this.macKeyObject);
    if (type === BlobType.Tree) mac.update(TREE_ID_PREFIX);
    return mac.update(plaintext).digest();
  }

  // ---- sealed files ----

  async writeSealedFile(prefix: 'index' | 'snapshots' | 'locks', kind: FileKind, content: unknown): Promise<string> {
    const ref = newFileKeyRef(kind);
    const [key] = await this.keys.fileKeys([ref], 'write');
    const bytes = sealFile(ref, key!, Buffer.from(JSON.stringify(content)));
    const id = createHash('sha256').update(bytes).digest('hex');
    await this.backend.put(`${prefix}/${id}`, bytes);
    return id;
  }

  async readSealedFile<T>(name: string, kind: FileKind, purpose: KeyPurpose = 'read'): Promise<T> {
    const bytes = await this.backend.get(name);
    const id = name.slice(name.lastIndexOf('/') + 1);
    if (kind !== FileKind.Lock && createHash('sha256').update(bytes).digest('hex') !== id) {
      throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} is damaged: its content does not match its name`, {
        hint: 'run `arca check`; restore the object from a copy of the store if you have one',
      });
    }
    const ref = readFileKeyRef(bytes, kind, name);
    const [key] = await this.keys.fileKeys([ref], purpose);
    try {
      return JSON.parse(openFile(ref, key!, bytes).toString('utf8')) as T;
    } catch (err) {
      if (err instanceof AuthenticationError) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} failed authentication (damaged or forged)`, { cause: err });
      throw err;
    }
  }

  // ---- index ----

  private indexLoadedOnce = false;

  /**
   * (Re)load the index from the store. The in-memory index is rebuilt, not added to: blobs that a
   * prune removed since the last load must be forgotten, or a backup through a long-lived Store
   * would deduplicate against deleted blobs. Blobs this Store uploaded itself stay known even when
   * their index file is not in the listing yet (still pending, being written, or written meanwhile).
   */

  async loadIndex(): Promise<void> {
    const fresh = new MasterIndex();
    const writtenMeanwhile = new MasterIndex();
    this.indexLoads.add(writtenMeanwhile);
    try {
      const files = await listAll(this.backend, 'index/');
      const sem = new Semaphore(8);
      await Promise.all(
        files.map((f) =>
          sem.run(async () => {
            const content = await this.readSealedFile<IndexFileContent>(f.name, FileKind.Index);
            fresh.addFileContent(content, f.name);
          }),
        ),
      );
      for (const pending of [this.pendingIndex, ...this.indexWrites]) {
        for (const list of pending.values()) for (const { id, entry } of list) fresh.add(id, entry);
      }
      for (const [id, entry] of writtenMeanwhile.entries()) fresh.add(id, entry);
      this.index.replaceWith(fresh);
      this.indexLoadedOnce = true;
    } finally {
      this.indexLoads.delete(writtenMeanwhile);
    }
  }

  hasBlob(id: string): boolean {
    return this.index.has(id) || this.inFlight.has(id);
  }

  /** Reserve a new blob for writing: false when it is stored or already being written by someone else. */
  claimBlob(id: string): boolean {
    if (this.hasBlob(id)) return false;
    this.inFlight.add(id);
    return true;
  }

  // ---- writing blobs ----

  /** Store a blob unless it already exists (trees and other small blobs use this path). */
  async saveBlob(type: BlobType, plaintext: Uint8Array): Promise<{ id: string; isNew: boolean }> {
    const id = this.blobId(plaintext, type);
    const hex = id.toString('hex');
    if (!this.claimBlob(hex)) return { id: hex, isNew: false };
    const [key] = await this.keys.blobKeys([id], 'write');
    await this.addSealedBlob(type, id, sealBlob(key!, id, type, plaintext, this.config.compression.level));
    return { id: hex, isNew: true };
  }

  /** Add a sealed blob that the caller has claimed with `claimBlob`. */
  async addSealedBlob(type: BlobType, id: Buffer, sealed: ReturnType<typeof sealBlob>): Promise<void> {
    this.throwIfUploadFailed();
    await this.writers[blobTypeName(type)].add(id, sealed);
  }

  /** Called by a PackWriter: upload with bounded concurrency, then index the pack's blobs. */
  async uploadPack(packId: string, name: string, bytes: readonly Buffer[], entries: PackEntry[]): Promise<void> {
    this.throwIfUploadFailed();
    await this.uploads.acquire();
    const p = (async () => {
      try {
        await this.backend.put(name, bytes);
        const list = entries.map((e) => ({
          id: e.id.toString('hex'),
          entry: { packId, type: e.type, encoding: e.encoding, offset: e.offset, length: e.length, rawLength: e.rawLength },
        }));
        for (const { id, entry } of list) {
          this.index.add(id, entry);
          this.inFlight.delete(id);
        }
        this.pendingIndex.set(packId, list);
        this.pendingPacks++;
      } catch (err) {
        this.uploadError ??= err;
      } finally {
        this.uploads.release();
      }
    })();
    this.uploadPromises.add(p);
    void p.finally(() => this.uploadPromises.delete(p));
    if (this.pendingPacks >= INDEX_FLUSH_PACKS) await this.writePendingIndex();
  }

  private throwIfUploadFailed(): void {
    if (this.uploadError) throw this.uploadError;
  }

  /** Flush both pack writers, wait for uploads, and write the index for everything uploaded. */
  async flush(): Promise<void> {
    await this.writers.data.flush();
    await this.writers.tree.flush();
    while (this.uploadPromises.size > 0) await Promise.all([...this.uploadPromises]);
    this.throwIfUploadFailed();
    await this.writePendingIndex();
  }

  private async writePendingIndex(): Promise<void> {
    if (this.pendingIndex.size === 0) return;
    const pending = this.pendingIndex;
    this.pendingIndex = new Map();
    this.pendingPacks = 0;
    this.indexWrites.add(pending);
    try {
      await this.writeSealedFile('index', FileKind.Index, indexFileContent(pending));
      for (const load of this.indexLoads) {
        for (const list of pending.values()) for (const { id, entry } of list) load.add(id, entry);
      }
    } finally {
      this.indexWrites.delete(pending);
    }
  }

  // ---- reading blobs ----

  async readBlob(id: string, expectedType?: BlobType): Promise<Buffer> {
    if (expectedType === BlobType.Tree) {
      const cached = this.treeCache.get(id);
      if (cached) return cached;
    }
    if (!this.indexLoadedOnce) await this.loadIndex(); // reads work on a freshly opened store
    const entry = this.index.get(id);
    if (!entry) {
      throw new ArcaError(ArcaErrorCode.BlobNotFound, `blob ${id.slice(0, 12)} is not in the index`, { hint: 'run `arca check` to see which files are affected' });
    }
    if (expectedType !== undefined && entry.type !== expectedType) {
      throw new ArcaError(ArcaErrorCode.CorruptObject, `blob ${id.slice(0, 12)} has type ${blobTypeName(entry.type)}, expected ${blobTypeName(expectedType)}`);
    }
    const sealed = await this.backend.getRange(packObjectName(entry.packId), entry.offset, entry.length);
    const plain = await this.openSealedBlob(id, entry, sealed);
    if (entry.type === BlobType.Tree) {
      if (this.treeCache.size > 4096) this.treeCache.clear();
      this.treeCache.set(id, plain);
    }
    return plain;
  }

  async openSealedBlob(id: string, entry: IndexEntry, sealed: Buffer): Promise<Buffer> {
    const idBytes = Buffer.from(id, 'hex');
    const [key] = await this.keys.blobKeys([idBytes], 'read');
    try {
      const plain = openBlob(key!, idBytes, entry.type, entry.encoding, sealed, entry.rawLength);
      // The AEAD tag proves a holder of this blob's key wrote it, not that the content is the one
      // the ID names: in managed mode, any agent with write keys holds K_blob. The ID does.
      if (!this.blobId(plain, entry.type).equals(idBytes)) throw new Error('its content does not match its ID');
      return plain;
    } catch (err) {
      throw new ArcaError(ArcaErrorCode.CorruptObject, `blob ${id.slice(0, 12)} in pack ${entry.packId.slice(0, 12)} is damaged (${err instanceof Error ? err.message : String(err)})`, {
        hint: 'run `arca check --read-data` to list every damaged blob and the files it belongs to',
        cause: err,
      });
    }
  }
}
