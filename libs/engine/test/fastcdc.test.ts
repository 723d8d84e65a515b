import { createCipheriv } from 'node:crypto';
import { hkdfSha256 } from '@arca/crypto';
import { describe, expect, it } from 'vitest';
import { FastCdc, DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from '../src/chunker/fastcdc.ts';

/** The cut rule of docs/store-format.md §13, written as plainly as possible. */
function referenceChunkLengths(key: Uint8Array, p: ChunkerParams, data: Uint8Array): number[] {
  const bytes = hkdfSha256(key, Buffer.alloc(0), Buffer.from('arca/gear/v1'), 1024);
  const gear = Array.from({ length: 256 }, (_, i) => bytes.readInt32LE(i * 4));
  const bits = Math.log2(p.avgSize);
  const mask = (b: number) => (0xffffffff << (32 - b)) | 0;
  const maskS = mask(bits + p.normalization);
  const maskL = mask(bits - p.normalization);
  const out: number[] = [];
  let start = 0;
  while (start < data.length) {
    const n = data.length - start;
    let len = Math.min(n, p.maxSize);
    if (n > p.minSize) {
      let h = 0;
      for (let i = p.minSize; i < Math.min(n, p.maxSize); i++) {
        h = (h * 2 + gear[data[start + i]!]!) | 0;
        if ((h & (i < p.avgSize ? maskS : maskL)) === 0) {
          len = i + 1;
          break;
        }
      }
    }
    out.push(len);
    start += len;
  }
  return out;
}

function pseudoRandom(size: number, seed: number): Buffer {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

describe('FastCDC chunker', () => {
  const key = Buffer.alloc(32, 9);
  const paramSets: ChunkerParams[] = [
    { algorithm: 'fastcdc-v1', minSize: 64, avgSize: 256, maxSize: 1024, normalization: 0 },
    { algorithm: 'fastcdc-v1', minSize: 1023, avgSize: 4096, maxSize: 16387, normalization: 2 },
    { algorithm: 'fastcdc-v1', minSize: 2048, avgSize: 8192, maxSize: 65536, normalization: 3 },
  ];

  it.each(paramSets)('cuts exactly where the specified rule cuts (min $minSize, avg $avgSize, max $maxSize)', (params) => {
    for (const seed of [1, 2, 3]) {
      const data = pseudoRandom(1_000_003, seed);
      expect(new FastCdc(key, params).chunkLengths(data)).toEqual(referenceChunkLengths(key, params, data));
    }
  });

  it('cuts low-entropy data at maxSize and keeps every chunk within bounds', () => {
    const params = paramSets[1]!;
    const lengths = new FastCdc(key, params).chunkLengths(Buffer.alloc(100_000));
    expect(lengths.slice(0, -1).every((l) => l === params.maxSize)).toBe(true);
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(100_000);
  });

  it('finds the same boundaries in a window as in the whole buffer (segmented reading relies on it)', () => {
    const params = paramSets[1]!;
    const cdc = new FastCdc(key, params);
    const data = pseudoRandom(300_000, 7);
    const whole = cdc.chunkLengths(data);
    let pos = 0;
    for (const len of whole.slice(0, -1)) {
      expect(cdc.nextChunkLength(data, pos, Math.min(data.length, pos + params.maxSize + 17))).toBe(len);
      pos += len;
    }
  });

  it('depends on the chunker key', () => {
    const data = pseudoRandom(4 << 20, 5);
    const a = new FastCdc(Buffer.alloc(32, 1), { ...DEFAULT_CHUNKER_PARAMS, minSize: 64 * 1024, avgSize: 256 * 1024 }).chunkLengths(data);
    const b = new FastCdc(Buffer.alloc(32, 2), { ...DEFAULT_CHUNKER_PARAMS, minSize: 64 * 1024, avgSize: 256 * 1024 }).chunkLengths(data);
    expect(a).not.toEqual(b);
  });
});
