import type { ChunkHints } from '../chunker/hinted-chunking.ts';
import type { Store } from '../store/store.ts';

/** At most this many previous chunks are sent with one segment (bounds the message). */
const MAX_WINDOW_CHUNKS = 8192;
/** Chunks before the estimated position also go into a window, for edits that deleted bytes. */
const WINDOW_BACKTRACK = 8;

/**
 * The previous version of a changed large file, as the chunk hints of each segment
 * (chunker/hinted-chunking.ts). Follows the file as its segments are hashed in order: after each
 * segment it knows which previous chunk should come next, or, after an edit, estimates where the
 * previous version's chunks continue from how far the new offsets have drifted from the old ones.
 */
export class PreviousChunks {
  private readonly ids: Buffer[];
  private readonly lengths: number[];
  /** end offset of each previous chunk in the previous file */
  private readonly ends: number[];
  private readonly indexOf = new Map<string, number>();
  /** the previous chunk expected at the current offset, or -1 after an edit */
  private next = 0;
  /** current offset minus the matching offset in the previous file, at the last re-synchronisation */
  private drift = 0;

  private constructor(ids: Buffer[], lengths: number[]) {
    this.ids = ids;
    this.lengths = lengths;
    let end = 0;
    this.ends = lengths.map((l) => (end += l));
    ids.forEach((id, i) => this.indexOf.set(id.toString('hex'), i));
  }

  /** The previous version of a file from its blob list; undefined when a blob's size is unknown. */
  static of(store: Store, content: readonly string[] | undefined): PreviousChunks | undefined {
    if (!content || content.length === 0) return undefined;
    const lengths: number[] = [];
    for (const id of content) {
      const entry = store.index.get(id);
      if (!entry) return undefined;
      lengths.push(entry.rawLength);
    }
    return new PreviousChunks(content.map((id) => Buffer.from(id, 'hex')), lengths);
  }

  /** Hints for the segment starting at `offset` and spanning up to `span` bytes. */
  hintsAt(offset: number, span: number): ChunkHints | undefined {
    const n = this.lengths.length;
    const start = this.next >= 0 ? this.next : Math.max(0, this.chunkAt(offset - this.drift) - WINDOW_BACKTRACK);
    if (start >= n) return undefined;
    const from = start === 0 ? 0 : this.ends[start - 1]!;
    let end = start;
    // twice the segment: the segment's own chunks, and room for the drift an edit introduces
    while (end < n && end - start < MAX_WINDOW_CHUNKS && (end === start || this.ends[end - 1]! - from < 2 * span)) end++;
    const ids = Buffer.allocUnsafe((end - start) * 32);
    for (let i = start; i < end; i++) this.ids[i]!.copy(ids, (i - start) * 32);
    return { ids, lengths: this.lengths.slice(start, end), first: start, next: this.next, last: n - 1 };
  }

  /** Follow the file past a hashed segment that ended at `offset` with chunks `ids`. */
  advance(offset: number, ids: readonly Buffer[]): void {
    const lastId = ids[ids.length - 1];
    if (!lastId) return;
    const i = this.indexOf.get(lastId.toString('hex'));
    if (i === undefined) {
      this.next = -1;
      return;
    }
    this.next = i + 1 < this.lengths.length ? i + 1 : -1;
    this.drift = offset - this.ends[i]!;
  }

  /** Index of the previous chunk containing previous-file offset `pos` (clamped). */
  private chunkAt(pos: number): number {
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! <= pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
