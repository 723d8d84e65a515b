import { createCipheriv, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FastCdc, type ChunkerParams } from '../src/chunker/fastcdc.ts';
import { chunkWithHints } from '../src/chunker/hinted-chunking.ts';
import { PreviousChunks } from '../src/backup/previous-chunks.ts';
import type { Store } from '../src/store/store.ts';

const PARAMS: ChunkerParams = { algorithm: 'fastcdc-v1', minSize: 1024, avgSize: 4096, maxSize: 16384, normalization: 2 };
const cdc = new FastCdc(Buffer.alloc(32, 1), PARAMS);
const idOf = (chunk: Buffer) => createHmac('sha256', 'mac').update(chunk).digest();

function random(size: number, seed: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16)).update(Buffer.alloc(size));
}

/**
 * The backup's large-file loop in miniature: segments of `segment` bytes hashed in order, each
 * starting where the previous one's final chunks ended, with hints from the previous version.
 */
function chunkInSegments(data: Buffer, previous: PreviousChunks | undefined, segment: number): { lengths: number[]; scanned: number } {
  const lengths: number[] = [];
  let scanned = 0;
  let offset = 0;
  for (;;) {
    const window = data.subarray(offset, offset + segment);
    const eof = offset + segment >= data.length;
    const hints = previous?.hintsAt(offset, segment);
    const result = hints
      ? chunkWithHints(cdc, idOf, window, eof, hints)
      : { ...plainFinal(window, eof), scannedBytes: window.length };
    lengths.push(...result.lengths);
    scanned += result.scannedBytes;
    offset += result.lengths.reduce((a, b) => a + b, 0);
    previous?.advance(offset, result.ids);
    if (eof && offset === data.length) return { lengths, scanned };
  }
}

function plainFinal(data: Buffer, eof: boolean): { lengths: number[]; ids: Buffer[] } {
  const lengths: number[] = [];
  const ids: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    const len = cdc.nextChunkLength(data, pos, data.length);
    if (!eof && pos + len === data.length && len < PARAMS.maxSize) break;
    lengths.push(len);
    ids.push(idOf(data.subarray(pos, pos + len)));
    pos += len;
  }
  return { lengths, ids };
}

function previousOf(data: Buffer): PreviousChunks {
  const lengths = cdc.chunkLengths(data);
  const byId = new Map<string, number>();
  const content: string[] = [];
  let pos = 0;
  for (const len of lengths) {
    const id = idOf(data.subarray(pos, pos + len)).toString('hex');
    byId.set(id, len);
    content.push(id);
    pos += len;
  }
  const store = { index: { get: (id: string) => (byId.has(id) ? { rawLength: byId.get(id)! } : undefined) } } as unknown as Store;
  return PreviousChunks.of(store, content)!;
}

const base = random(2_000_000, 1);
const edits: [string, (b: Buffer) => Buffer][] = [
  ['unchanged', (b) => b],
  ['bytes inserted in the middle', (b) => Buffer.concat([b.subarray(0, 1_000_003), random(4096, 2), b.subarray(1_000_003)])],
  ['a range deleted', (b) => Buffer.concat([b.subarray(0, 700_000), b.subarray(760_001)])],
  ['bytes overwritten', (b) => { const c = Buffer.from(b); random(100, 3).copy(c, 1_500_000); return c; }],
  ['data appended', (b) => Buffer.concat([b, random(50_000, 4)])],
  ['truncated', (b) => b.subarray(0, 1_234_567)],
  ['data prepended', (b) => Buffer.concat([random(777, 5), b])],
  ['two distant edits', (b) => Buffer.concat([b.subarray(0, 300_000), random(10, 6), b.subarray(300_000, 1_800_000), b.subarray(1_800_100)])],
  ['entirely new content', () => random(2_000_000, 7)],
  ['a repeated block', (b) => Buffer.concat([b.subarray(0, 500_000), b.subarray(0, 500_000), b.subarray(500_000)])],
];

describe('chunking with the previous version as hints', () => {
  it.each(edits)('cuts exactly like plain FastCDC (%s)', (_name, edit) => {
    const data = edit(base);
    const expected = cdc.chunkLengths(data);
    for (const segment of [65_536, 100_003, 4_000_000]) {
      expect(chunkInSegments(data, previousOf(base), segment).lengths).toEqual(expected);
      expect(chunkInSegments(data, undefined, segment).lengths).toEqual(expected);
    }
  });

  it('scans only the edited region of a large file', () => {
    const data = edits[1]![1](base);
    const { scanned } = chunkInSegments(data, previousOf(base), 100_003);
    expect(scanned).toBeLessThan(data.length / 20);
    expect(chunkInSegments(base, previousOf(base), 100_003).scanned).toBe(0);
  });

  it('falls back to scanning everything when nothing matches', () => {
    const data = random(500_000, 9);
    expect(chunkInSegments(data, previousOf(base), 100_003).scanned).toBe(data.length);
  });

  it('does not reuse the previous last chunk when the file grew after it', () => {
    const short = base.subarray(0, 100_000);
    const grown = Buffer.concat([short, random(30_000, 8)]);
    expect(chunkInSegments(grown, previousOf(short), 4_000_000).lengths).toEqual(cdc.chunkLengths(grown));
  });
});
