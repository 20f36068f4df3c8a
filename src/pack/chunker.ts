/**
 * Content-defined chunk boundaries (pure): a gear hash with FastCDC's
 * normalized chunking. Inside a run of file data a boundary falls where the
 * hash of the last 32 bytes matches a mask, so an insertion moves only the
 * boundaries next to it and the chunks after it come out byte-identical.
 * The gear table and the masks are part of the archive format: changing them
 * changes every archive `lander pack` writes (and the chunks a delta can reuse).
 */
import { createHash } from 'node:crypto';

export interface ChunkSizes {
  /** Target average chunk size in bytes (a power of two). */
  avg: number;
  /** No data cut before this many bytes of a chunk. @default avg / 4 */
  min: number;
  /** A cut is forced here. @default avg * 4 */
  max: number;
}

/** `avg` 8 KiB by default (lander pack's): small enough that an edit costs little, big enough that the archive stays within 3% of one gzip -6 stream. */
export function chunkSizes(avg = 8 * 1024): ChunkSizes {
  if (!Number.isInteger(Math.log2(avg)) || avg < 1024 || avg > 1 << 24) throw new RangeError(`Expected a chunk size that is a power of two from 1 KiB to 16 MiB, got ${avg}`);
  return { avg, min: avg / 4, max: avg * 4 };
}

/**
 * Inside files under 1 MiB (src/pack/chunked-gzip.ts): half the average, at
 * least 1 KiB, so a one-line edit of a source file costs a small member.
 */
export function smallChunkSizes(avg = 8 * 1024): ChunkSizes {
  return chunkSizes(Math.max(1024, avg / 2));
}

/** Inside files of 64 MiB or more: four times the average (at most 16 MiB), so a 2 GB CUDA archive is not 250,000 members. */
export function hugeChunkSizes(avg = 8 * 1024): ChunkSizes {
  return chunkSizes(Math.min(1 << 24, avg * 4));
}

/** gear[b] = the first 4 bytes (big-endian) of SHA-256("lander-gear-" + b): fixed forever. */
export const GEAR: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) t[i] = createHash('sha256').update(`lander-gear-${i}`).digest().readUInt32BE(0);
  return t;
})();

/** The top `bits` bits of a 32-bit word: those depend on the last 32 input bytes. */
function topMask(bits: number): number {
  return bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * Finds data boundaries. `feed` returns how many bytes of `buf` belong to
 * the current chunk up to the next boundary (-1 when none), given
 * how long the chunk already is. Call `reset()` after every cut, whoever made it.
 */
export class GearChunker {
  private h = 0;
  private readonly sizes: ChunkSizes;
  private readonly maskS: number;
  private readonly maskL: number;

  constructor(sizes: ChunkSizes) {
    this.sizes = sizes;
    const bits = Math.log2(sizes.avg);
    // Normalized chunking (FastCDC, level 1): harder to cut before avg, easier after. Level 2
    // sizes chunks more evenly but takes longer to fall back into step after an edit.
    this.maskS = topMask(bits + 1);
    this.maskL = topMask(bits - 1);
  }

  reset(): void {
    this.h = 0;
  }

  /**
   * @param chunkLen bytes already in the current chunk
   * @returns bytes of `buf` up to and including the boundary, or -1 without one
   */
  feed(buf: Uint8Array, chunkLen: number): number {
    const { min, avg, max } = this.sizes;
    let h = this.h;
    const n = buf.length;
    let i = 0;
    // Bytes before `min` only warm the hash: a boundary there is not allowed.
    if (chunkLen < min) {
      const skip = Math.min(n, min - chunkLen);
      for (; i < skip; i++) h = ((h << 1) + GEAR[buf[i]!]!) >>> 0;
    }
    for (; i < n; i++) {
      h = ((h << 1) + GEAR[buf[i]!]!) >>> 0;
      const len = chunkLen + i + 1;
      if (len >= max || (h & (len < avg ? this.maskS : this.maskL)) === 0) {
        this.h = 0;
        return i + 1;
      }
    }
    this.h = h;
    return -1;
  }
}
