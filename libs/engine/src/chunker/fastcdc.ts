import { hkdfSha256 } from '@arca/crypto';

/**
 * FastCDC with normalized chunking (Xia et al., USENIX ATC'16) over a 32-bit gear hash.
 *
 * The gear table is derived from the store's chunker key, so chunk boundaries depend on a secret:
 * an observer of chunk sizes cannot confirm that a known file is in the store.
 *
 * Cut rule, for a chunk starting at `s` with `n` bytes available:
 *   - the first `minSize` bytes are skipped (never a boundary, not hashed);
 *   - h = (h << 1) + gear[byte]  (32-bit wrapping), starting from h = 0 at s + minSize;
 *   - until s + avgSize: cut after byte i when (h & maskS) == 0  (harder: avg bits + normalization)
 *   - after that:        cut after byte i when (h & maskL) == 0  (easier: avg bits - normalization)
 *   - a chunk never exceeds maxSize.
 * Masks take the top bits of h, the ones that depend on the most recent 32 bytes.
 */
export interface ChunkerParams {
  algorithm: 'fastcdc-v1';
  minSize: number;
  avgSize: number;
  maxSize: number;
  /** normalization level (FastCDC's NC), 0-3 */
  normalization: number;
}

export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = {
  algorithm: 'fastcdc-v1',
  minSize: 512 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
  normalization: 2,
};

const GEAR_INFO = Buffer.from('arca/gear/v1');

export function validateChunkerParams(p: ChunkerParams): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (p.algorithm !== 'fastcdc-v1') throw new Error(`unknown chunker ${String(p.algorithm)}`);
  if (!pow2(p.avgSize) || p.avgSize < 256 || p.avgSize > 2 ** 28) throw new Error('chunker avgSize must be a power of two between 256 B and 256 MiB');
  if (!(p.minSize >= 64 && p.minSize < p.avgSize && p.avgSize < p.maxSize && p.maxSize <= 2 ** 30)) {
    throw new Error('chunker sizes must satisfy 64 <= minSize < avgSize < maxSize <= 1 GiB');
  }
  if (!Number.isInteger(p.normalization) || p.normalization < 0 || p.normalization > 3) throw new Error('chunker normalization must be 0..3');
}

function topBitsMask(bits: number): number {
  return bits >= 32 ? -1 : ((0xffffffff << (32 - bits)) | 0);
}

export class FastCdc {
  readonly params: ChunkerParams;
  private readonly gear: Int32Array;
  private readonly maskS: number;
  private readonly maskL: number;

  constructor(chunkerKey: Uint8Array, params: ChunkerParams = DEFAULT_CHUNKER_PARAMS) {
    validateChunkerParams(params);
    this.params = params;
    const bytes = hkdfSha256(chunkerKey, Buffer.alloc(0), GEAR_INFO, 256 * 4);
    this.gear = new Int32Array(256);
    for (let i = 0; i < 256; i++) this.gear[i] = bytes.readInt32LE(i * 4);
    const bits = Math.log2(params.avgSize);
    this.maskS = topBitsMask(bits + params.normalization);
    this.maskL = topBitsMask(bits - params.normalization);
  }

  /**
   * Length of the next chunk of `data[start, end)`. A length that reaches `end` is final only at the
   * end of the input or at maxSize; one that stops before `end` is final regardless of what follows.
   */
  nextChunkLength(data: Uint8Array, start: number, end: number): number {
    const { minSize, avgSize, maxSize } = this.params;
    const available = end - start;
    if (available <= minSize) return available;
    const limit = start + Math.min(available, maxSize);
    const normal = start + Math.min(available, avgSize);
    const gear = this.gear;
    const maskS = this.maskS;
    const maskL = this.maskL;
    let h = 0;
    let i = start + minSize;
    // Unrolled by four: the gear hash is a serial dependency chain, so the gain is in fewer loop
    // checks per byte (measured ~1.4x on this loop). Boundaries are identical to the plain loop.
    const normal4 = normal - 3;
    for (; i < normal4; i += 4) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
      h = ((h << 1) + gear[data[i + 1]!]!) | 0;
      if ((h & maskS) === 0) return i + 2 - start;
      h = ((h << 1) + gear[data[i + 2]!]!) | 0;
      if ((h & maskS) === 0) return i + 3 - start;
      h = ((h << 1) + gear[data[i + 3]!]!) | 0;
      if ((h & maskS) === 0) return i + 4 - start;
    }
    for (; i < normal; i++) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
    }
    const limit4 = limit - 3;
    for (; i < limit4; i += 4) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
      h = ((h << 1) + gear[data[i + 1]!]!) | 0;
      if ((h & maskL) === 0) return i + 2 - start;
      h = ((h << 1) + gear[data[i + 2]!]!) | 0;
      if ((h & maskL) === 0) return i + 3 - start;
      h = ((h << 1) + gear[data[i + 3]!]!) | 0;
      if ((h & maskL) === 0) return i + 4 - start;
    }
    for (; i < limit; i++) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
    }
    return limit - start;
  }


  /** Split a complete buffer into chunk lengths (convenience for small inputs and tests). */
  chunkLengths(data: Uint8Array): number[] {
    const out: number[] = [];
    let pos = 0;
    while (pos < data.length) {
      const len = this.nextChunkLength(data, pos, data.length);
      out.push(len);
      pos += len;
    }
    return out;
  }
}
