import type { FastCdc } from './fastcdc.ts';

/**
 * Chunking a changed file with the help of its previous version's chunk list.
 *
 * When a chunk starts at `pos` and its bytes equal a previous chunk that was cut by the content
 * (not by the end of the file), FastCDC cuts at the same place again: the cut depends only on the
 * chunk's own bytes and on how much data follows (min/avg/max thresholds, which an equal chunk
 * that was not the file's last one never reaches). So instead of running the gear loop over an
 * unchanged region, we guess that the next chunk is the previous version's next chunk and confirm
 * the guess with its ID (an HMAC: equal IDs mean equal bytes). A wrong guess costs one HMAC of
 * the guessed length; the gear loop then takes over until one of its chunks is a previous chunk
 * again (CDC re-synchronises after an edit), and guessing resumes after it.
 *
 * The result is exactly what plain CDC produces (tested): this is an optimisation, not a format.
 */
export interface ChunkHints {
  /** IDs of a window of the previous version's chunks, 32 bytes each, back to back */
  ids: Uint8Array;
  /** their lengths */
  lengths: number[];
  /** index (in the previous version) of the window's first chunk */
  first: number;
  /** index of the previous chunk expected to start at the segment's first byte, or -1 */
  next: number;
  /** index of the previous version's last chunk (cut by the end of the file, not by content) */
  last: number;
}

export interface HintedChunks {
  lengths: number[];
  ids: Buffer[];
  /** bytes that went through the gear loop (the rest was confirmed by ID alone) */
  scannedBytes: number;
}

/**
 * Cut the final chunks of `data` (see blob-worker's finalChunkLengths for what is final) and
 * compute their IDs with `idOf`, guessing boundaries from `hints`.
 */
export function chunkWithHints(
  chunker: FastCdc,
  idOf: (chunk: Buffer) => Buffer,
  data: Buffer,
  eof: boolean,
  hints: ChunkHints,
): HintedChunks {
  const { maxSize } = chunker.params;
  const windowIndex = new Map<string, number>();
  const count = hints.lengths.length;
  const hintId = (i: number) => Buffer.from(hints.ids.buffer, hints.ids.byteOffset + (i - hints.first) * 32, 32);
  for (let i = hints.first; i < hints.first + count; i++) windowIndex.set(hintId(i).toString('hex'), i);

  const lengths: number[] = [];
  const ids: Buffer[] = [];
  let scannedBytes = 0;
  let expect = hints.next;
  let pos = 0;
  while (pos < data.length) {
    let guessed: { length: number; id: Buffer } | undefined;
    if (expect >= hints.first && expect < hints.first + count) {
      const length = hints.lengths[expect - hints.first]!;
      const end = pos + length;
      if (end > data.length && !eof) break; // the guess needs bytes of the next segment
      const fitsEnd = expect !== hints.last || (eof && end === data.length);
      if (end <= data.length && fitsEnd) {
        const id = idOf(data.subarray(pos, end));
        if (id.equals(hintId(expect))) {
          lengths.push(length);
          ids.push(id);
          pos = end;
          expect++;
          continue;
        }
        guessed = { length, id };
      }
    }
    const length = chunker.nextChunkLength(data, pos, data.length);
    if (!eof && pos + length === data.length && length < maxSize) break; // not final: carried to the next segment
    scannedBytes += length;
    const id = guessed?.length === length ? guessed.id : idOf(data.subarray(pos, pos + length));
    lengths.push(length);
    ids.push(id);
    pos += length;
    const seen = windowIndex.get(id.toString('hex'));
    expect = seen === undefined ? -1 : seen + 1;
  }
  return { lengths, ids, scannedBytes };
}
