import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aeadOpen, aeadSeal, AuthenticationError, BlobKeyDeriver, deriveBlobKey, deriveFileKey, deriveStoreKeys, hkdfSha256 } from '../src/index.ts';

describe('key hierarchy', () => {
  it('fast blob key derivation equals HKDF-SHA256 for every id', () => {
    const dataKey = randomBytes(32);
    const fast = new BlobKeyDeriver(dataKey);
    for (let i = 0; i < 200; i++) {
      const id = randomBytes(32);
      expect(fast.derive(id).equals(deriveBlobKey(dataKey, id))).toBe(true);
    }
  });

  it('derives independent keys per purpose and per store', () => {
    const mk = randomBytes(32);
    const a = deriveStoreKeys(mk, Buffer.alloc(32, 1));
    const b = deriveStoreKeys(mk, Buffer.alloc(32, 2));
    const all = [a.macKey, a.chunkerKey, a.dataKey, b.macKey, b.chunkerKey, b.dataKey].map((k) => k.toString('hex'));
    expect(new Set(all).size).toBe(6);
    expect(deriveFileKey(a.dataKey, 2, Buffer.alloc(16)).equals(deriveFileKey(a.dataKey, 3, Buffer.alloc(16)))).toBe(false);
  });

  it('matches RFC 5869 test case 3 (empty salt and info)', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    const okm = hkdfSha256(ikm, Buffer.alloc(0), Buffer.alloc(0), 42);
    expect(okm.toString('hex')).toBe('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
  });

  it('AEAD rejects a flipped bit, a wrong key and wrong associated data', () => {
    const key = randomBytes(32);
    const sealed = aeadSeal(key, Buffer.from('secret'), Buffer.from('ad'));
    expect(aeadOpen(key, sealed, Buffer.from('ad')).toString()).toBe('secret');
    const flipped = Buffer.from(sealed);
    flipped[14]! ^= 1;
    expect(() => aeadOpen(key, flipped, Buffer.from('ad'))).toThrow(AuthenticationError);
    expect(() => aeadOpen(randomBytes(32), sealed, Buffer.from('ad'))).toThrow(AuthenticationError);
    expect(() => aeadOpen(key, sealed, Buffer.from('AD'))).toThrow(AuthenticationError);
  });
});
