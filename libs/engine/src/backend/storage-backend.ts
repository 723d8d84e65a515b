/**
 * The one interface every store location implements. Object names are the store layout's keys
 * (`config`, `keys/<id>`, `packs/<2hex>/<id>`, `index/<id>`, `snapshots/<id>`, `locks/<id>`).
 *
 * Contract:
 * - `put` is atomic: a reader sees either no object or the whole object, never a partial one,
 *   including after a crash or a killed process.
 * - `get` and `getRange` throw an ArcaError(BLOB_NOT_FOUND) for a missing object.
 * - `list(prefix)` yields names of complete objects only (never temp files), in no fixed order.
 */
export interface ObjectInfo {
  name: string;
  size: number;
}

/** An object's bytes: one buffer, or parts written in order (saves copying a pack together). */
export type ObjectData = Uint8Array | readonly Uint8Array[];

export function objectBytes(data: ObjectData): Uint8Array {
  return data instanceof Uint8Array ? data : Buffer.concat(data);
}

export interface StorageBackend {
  /** human-readable location, without credentials */
  readonly location: string;
  put(name: string, data: ObjectData): Promise<void>;
  get(name: string): Promise<Buffer>;
  getRange(name: string, offset: number, length: number): Promise<Buffer>;
  stat(name: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(name: string): Promise<void>;
  close(): Promise<void>;
  /**
   * For stores on a local filesystem: the path of an object, so worker threads can read packs
   * directly instead of receiving bytes from the main thread. Undefined for remote backends.
   */
  localPath?(name: string): string | undefined;
}

export async function listAll(backend: StorageBackend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of backend.list(prefix)) out.push(item);
  return out;
}
