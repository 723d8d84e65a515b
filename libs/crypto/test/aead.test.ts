import { describe, expect, it } from 'vitest';
import { aeadOpen, aeadSeal, AEAD_NONCE_BYTES, AEAD_OVERHEAD, AuthenticationError } from '../src/index.ts';

describe('AEAD (AES-256-GCM)', () => {
  const key = Buffer.alloc(32, 3);
  const ad = Buffer.from('associated');

  it('round-trips, and refuses a wrong key, wrong associated data or a flipped bit', () => {
    const sealed = aeadSeal(key, Buffer.from('hello'), ad);
    expect(sealed.length).toBe(5 + AEAD_OVERHEAD);
    expect(aeadOpen(key, sealed, ad).toString()).toBe('hello');
    expect(() => aeadOpen(Buffer.alloc(32, 4), sealed, ad)).toThrow(AuthenticationError);
    expect(() => aeadOpen(key, sealed, Buffer.from('other'))).toThrow(AuthenticationError);
    const flipped = Buffer.from(sealed);
    flipped[AEAD_NONCE_BYTES + 1]! ^= 1;
    expect(() => aeadOpen(key, flipped, ad)).toThrow(AuthenticationError);
  });

  it('never reuses a nonce, across refills of the nonce pool', () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 5000; i++) nonces.add(aeadSeal(key, Buffer.alloc(1), ad).subarray(0, AEAD_NONCE_BYTES).toString('hex'));
    expect(nonces.size).toBe(5000);
  });

  it('keeps each sealed output intact after later seals refill the pool', () => {
    const first = aeadSeal(key, Buffer.from('first'), ad);
    const copy = Buffer.from(first);
    for (let i = 0; i < 1000; i++) aeadSeal(key, Buffer.alloc(1), ad);
    expect(first.equals(copy)).toBe(true);
    expect(aeadOpen(key, first, ad).toString()).toBe('first');
  });
});
