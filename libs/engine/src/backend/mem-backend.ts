import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';
import { objectBytes, type ObjectData, type ObjectInfo, type StorageBackend } from './storage-backend.ts';

/** In-memory backend for tests and throw-away stores. */
export class MemBackend implements StorageBackend {
  readonly location = 'mem:';
  readonly objects = new Map<string, Buffer>();

  async put(name: string, data: ObjectData): Promise<void> {
    this.objects.set(name, Buffer.from(objectBytes(data)));
  }

  async get(name: string): Promise<Buffer> {
    const obj = this.objects.get(name);
    if (!obj) throw new ArcaError(ArcaErrorCode.BlobNotFound, `object ${name} does not exist in the store`);
    return Buffer.from(obj);
  }

  async getRange(name: string, offset: number, length: number): Promise<Buffer> {
    const obj = await this.get(name);
    if (offset + length > obj.length) throw new ArcaError(ArcaErrorCode.CorruptObject, `${name} is truncated`);
    return obj.subarray(offset, offset + length);
  }

  async stat(name: string): Promise<ObjectInfo | undefined> {
    const obj = this.objects.get(name);
    return obj ? { name, size: obj.length } : undefined;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [name, data] of [...this.objects]) if (name.startsWith(prefix)) yield { name, size: data.length };
  }

  async delete(name: string): Promise<void> {
    this.objects.delete(name);
  }

  async close(): Promise<void> {}
}
