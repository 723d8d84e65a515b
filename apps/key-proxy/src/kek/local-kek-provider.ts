import { createHash, randomBytes } from 'node:crypto';
import { link, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { aeadOpen, aeadSeal, AuthenticationError } from '@arca/crypto';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import { checkKekContext, checkMasterKey, decodeBase64Ciphertext } from './kek-input.ts';
import { rewrapThroughMemory, envelopeAad, type KekContext, type KekProvider, type WrappedKey } from './kek-provider.ts';
import { readSecretFile } from './secret-file.ts';

/**
 * Local KEK provider, for development and small single-host installs: the KEK is a file on the
 * proxy's disk, so anyone who can read that file and a store's config can recover the store's MK.
 * Production deployments should use Vault, KMS or an HSM, where the KEK never leaves the provider.
 *
 * KEK file format: the 32-byte KEK as 64 hex characters (either case), optionally followed by
 * whitespace / a newline; nothing else. Hex rather than raw bytes so the file survives copying
 * through text tools and secret managers, and a truncated or wrong file is detected.
 * The file must be mode 0600 (or stricter) and owned by the proxy's user.
 *
 * Wrapping: AES-256-GCM, random 96-bit nonce, AAD = envelopeAad(context) (binds org and store);
 * `ct` = base64(nonce || ciphertext || tag); `kek` = the KEK id, the first 16 hex characters of
 * SHA-256(KEK), so an envelope names the KEK file it needs.
 *
 * Rotation: create a new KEK file, make it `kekFile` and move the old one to `previousKekFiles`;
 * unwrap finds the KEK by id, and rewrap re-encrypts under the current one. Once every envelope is
 * rewrapped (none names the old id any more), the old file can be removed.
 */
export interface LocalKekProviderOptions {
  /** path of the current KEK file: new envelopes and rewraps use it */
  kekFile: string;
  /** older KEK files still accepted for unwrap (rotation in progress) */
  previousKekFiles?: readonly string[];
}

interface LoadedKek {
  readonly id: string;
  readonly key: Buffer;
}

const KEK_BYTES = 32;
const WHAT = 'local KEK file';

/** KEK id: first 16 hex characters of SHA-256 of the KEK (not secret: 64 bits of a hash of 256 random bits). */
export function localKekId(kek: Buffer): string {
  return createHash('sha256').update(kek).digest('hex').slice(0, 16);
}

export class LocalKekProvider implements KekProvider {
  readonly name = 'local' as const;
  readonly #current: LoadedKek;
  readonly #byId: Map<string, LoadedKek>;
  #closed = false;

  private constructor(current: LoadedKek, previous: readonly LoadedKek[]) {
    this.#current = current;
    this.#byId = new Map([[current.id, current]]);
    for (const kek of previous) {
      // the same file listed twice (or as both current and previous) is harmless: keep one copy
      if (this.#byId.has(kek.id)) kek.key.fill(0);
      else this.#byId.set(kek.id, kek);
    }
  }

  /** Loads and checks the KEK files; throws CONFIG_INVALID with the fix when one is unusable. */
  static async open(options: LocalKekProviderOptions): Promise<LocalKekProvider> {
    const loaded: LoadedKek[] = [];
    try {
      for (const file of [options.kekFile, ...(options.previousKekFiles ?? [])]) {
        loaded.push(await loadKekFile(file));
      }
    } catch (err) {
      for (const kek of loaded) kek.key.fill(0);
      throw err;
    }
    return new LocalKekProvider(loaded[0]!, loaded.slice(1));
  }

  /** id of the KEK that wrap and rewrap use */
  get currentKekId(): string {
    return this.#current.id;
  }

  async wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey> {
    checkKekContext(context);
    checkMasterKey(masterKey);
    this.#assertOpen();
    const sealed = aeadSeal(this.#current.key, masterKey, envelopeAad(context));
    return { kek: this.#current.id, ct: sealed.toString('base64') };
  }

  async unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer> {
    checkKekContext(context);
    this.#assertOpen();
    const kek = this.#byId.get(wrapped.kek);
    if (!kek) {
      throw new KeyProxyError(
        KeyProxyErrorCode.ProviderError,
        `envelope was wrapped under local KEK ${JSON.stringify(String(wrapped.kek).slice(0, 64))}, which this proxy ` +
          'has not loaded; if it is an older KEK, add its file to the previous KEK files',
      );
    }
    const sealed = decodeBase64Ciphertext(wrapped.ct, 'local KEK');
    try {
      return aeadOpen(kek.key, sealed, envelopeAad(context));
    } catch (err) {
      if (!(err instanceof AuthenticationError)) throw err;
      throw new KeyProxyError(
        KeyProxyErrorCode.ProviderError,
        `envelope does not unwrap under local KEK ${kek.id} for this organization and store: ` +
          'it was altered, or it belongs to another store or organization',
      );
    }
  }

  async rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
    return rewrapThroughMemory(this, wrapped, context);
  }

  async ready(): Promise<void> {
    this.#assertOpen();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Best effort: node:crypto copies the key into OpenSSL per operation, and those copies are
    // freed (not wiped) by OpenSSL; this removes the long-lived copy.
    for (const kek of this.#byId.values()) kek.key.fill(0);
    this.#byId.clear();
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new KeyProxyError(KeyProxyErrorCode.ProviderUnavailable, 'local KEK provider is closed');
    }
  }
}

/**
 * Creates a new KEK file with 32 random bytes, mode 0600. Refuses to overwrite an existing file
 * (that would orphan every envelope wrapped under it). Atomic: the KEK is written and fsynced to a
 * temporary file in the same directory, then hard-linked to `kekPath` — link(2), unlike rename(2),
 * fails if the target exists, so there is no check-then-write race — and the directory is fsynced.
 * A crash leaves either no file or the complete one.
 */
export async function createLocalKekFile(kekPath: string): Promise<{ path: string; kekId: string }> {
  const dir = path.dirname(kekPath);
  const tmpPath = path.join(dir, `.${path.basename(kekPath)}.${randomBytes(8).toString('hex')}.tmp`);
  const kek = randomBytes(KEK_BYTES);
  const text = encodeHexLine(kek);
  try {
    const handle = await open(tmpPath, 'wx', 0o600);
    try {
      await handle.chmod(0o600); // the umask can only narrow 0600, but make the intent explicit
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tmpPath, kekPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new KeyProxyError(
          KeyProxyErrorCode.ConfigInvalid,
          `${kekPath} already exists; refusing to overwrite a KEK file (envelopes wrapped under it would become unreadable)`,
        );
      }
      throw err;
    } finally {
      await unlink(tmpPath).catch(() => undefined);
    }
    await fsyncDirectory(dir);
    return { path: kekPath, kekId: localKekId(kek) };
  } finally {
    kek.fill(0);
    text.fill(0);
  }
}

async function loadKekFile(file: string): Promise<LoadedKek> {
  const content = await readSecretFile(file, WHAT);
  try {
    const key = decodeHexKek(content);
    if (!key) {
      throw new KeyProxyError(
        KeyProxyErrorCode.ConfigInvalid,
        `${WHAT} ${file} must contain exactly ${KEK_BYTES * 2} hex characters (a 32-byte KEK)`,
      );
    }
    return { id: localKekId(key), key };
  } finally {
    content.fill(0);
  }
}

/**
 * Hex is decoded byte by byte from the Buffer rather than through a string: JS strings cannot be
 * wiped, Buffers can.
 */
function decodeHexKek(content: Buffer): Buffer | undefined {
  let end = content.length;
  while (end > 0 && isWhitespace(content[end - 1]!)) end--;
  let start = 0;
  while (start < end && isWhitespace(content[start]!)) start++;
  if (end - start !== KEK_BYTES * 2) return undefined;
  const key = Buffer.alloc(KEK_BYTES);
  for (let i = 0; i < KEK_BYTES; i++) {
    const hi = hexValue(content[start + 2 * i]!);
    const lo = hexValue(content[start + 2 * i + 1]!);
    if (hi < 0 || lo < 0) {
      key.fill(0);
      return undefined;
    }
    key[i] = (hi << 4) | lo;
  }
  return key;
}

function encodeHexLine(bytes: Buffer): Buffer {
  const digits = '0123456789abcdef';
  const out = Buffer.alloc(bytes.length * 2 + 1);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = digits.charCodeAt(bytes[i]! >> 4);
    out[2 * i + 1] = digits.charCodeAt(bytes[i]! & 0x0f);
  }
  out[out.length - 1] = 0x0a;
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // a-f
  if (c >= 0x41 && c <= 0x46) return c - 0x37; // A-F
  return -1;
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

async function fsyncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // some platforms/filesystems cannot fsync a directory; the file itself is already durable
  } finally {
    await handle?.close();
  }
}
