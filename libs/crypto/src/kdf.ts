import { argon2Sync, hkdfSync, randomBytes } from 'node:crypto';

export interface Argon2idParams {
  name: 'argon2id';
  /** memory in KiB */
  memoryKiB: number;
  iterations: number;
  parallelism: number;
  /** base64 salt, 16+ bytes */
  salt: string;
}

/** OWASP-recommended-or-stronger defaults; ~0.2 s on a 2-core machine with the native implementation. */
export function defaultArgon2idParams(): Argon2idParams {
  return { name: 'argon2id', memoryKiB: 64 * 1024, iterations: 3, parallelism: 4, salt: randomBytes(16).toString('base64') };
}

const MIN_MEMORY_KIB = 8 * 1024;
const MAX_MEMORY_KIB = 4 * 1024 * 1024;
const MAX_ITERATIONS = 64;
const MAX_PARALLELISM = 16;

/**
 * Argon2id through node:crypto (OpenSSL, native, Node >= 24.7): an order of magnitude faster than a
 * pure-JS implementation, which lets us afford stronger parameters for the same unlock time.
 */
export function argon2id(passphrase: string | Uint8Array, params: Argon2idParams, length = 32): Buffer {
  if (params.name !== 'argon2id') throw new Error(`unsupported key derivation function: ${String(params.name)}`);
  if (params.memoryKiB < MIN_MEMORY_KIB || params.iterations < 1 || params.parallelism < 1) {
    throw new Error('refusing weak Argon2id parameters (memory >= 8 MiB, iterations >= 1)');
  }
  // Upper bounds: a key slot planted by someone with write access must not stall every unlock.
  if (params.memoryKiB > MAX_MEMORY_KIB || params.iterations > MAX_ITERATIONS || params.parallelism > MAX_PARALLELISM) {
    throw new Error('refusing Argon2id parameters above 4 GiB memory, 64 iterations or parallelism 16');
  }
  return argon2Sync('argon2id', {
    message: typeof passphrase === 'string' ? Buffer.from(passphrase, 'utf8') : passphrase,
    nonce: Buffer.from(params.salt, 'base64'),
    parallelism: params.parallelism,
    tagLength: length,
    memory: params.memoryKiB,
    passes: params.iterations,
  });
}

/** HKDF-SHA256 returning a Buffer. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}
