/**
 * Pure byte-range arithmetic for segmented downloads: half-open ranges
 * `[start, end)`, merged coverage, what is still missing, and how to cut the
 * missing part into segments. No I/O; unit-tested with hand-built inputs.
 */

/** Bytes `[start, end)` of a resource. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Sorts and merges overlapping or touching ranges; drops empty ones. */
export function mergeRanges(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).map((r) => ({ ...r })).sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push(r);
  }
  return out;
}

/** The end of the bytes covered without a gap from `from` on (`from` itself when `from` is not covered). */
export function contiguousEnd(covered: readonly ByteRange[], from: number): number {
  let end = from;
  for (const r of mergeRanges(covered)) {
    if (r.start > end) break;
    if (r.end > end) end = r.end;
  }
  return end;
}

/** The parts of `[from, to)` that `covered` does not cover, in order. */
export function missingRanges(covered: readonly ByteRange[], from: number, to: number): ByteRange[] {
  const out: ByteRange[] = [];
  let pos = from;
  for (const r of mergeRanges(covered)) {
    if (r.end <= pos) continue;
    if (r.start >= to) break;
    if (r.start > pos) out.push({ start: pos, end: Math.min(r.start, to) });
    pos = Math.max(pos, r.end);
    if (pos >= to) break;
  }
  if (pos < to) out.push({ start: pos, end: to });
  return out;
}

/**
 * Cuts each range into segments of at most `segmentBytes`.
 *
 * @example splitRanges([{ start: 0, end: 10 }], 4) // [0,4) [4,8) [8,10)
 */
export function splitRanges(ranges: readonly ByteRange[], segmentBytes: number): ByteRange[] {
  const size = Math.max(1, Math.floor(segmentBytes));
  const out: ByteRange[] = [];
  for (const r of ranges) {
    for (let s = r.start; s < r.end; s += size) out.push({ start: s, end: Math.min(r.end, s + size) });
  }
  return out;
}

/**
 * A segment size for `remaining` bytes over `connections`: about four
 * segments per connection (so a slow connection holds back little at the
 * end, and a kill loses less than one segment per connection), within
 * `[minBytes, maxBytes]`.
 */
export function segmentSize(remaining: number, connections: number, minBytes = 1 << 20, maxBytes = 16 << 20): number {
  const want = Math.ceil(remaining / Math.max(1, connections * 4));
  return Math.max(minBytes, Math.min(maxBytes, want));
}

/** Total bytes in `ranges` (assumed disjoint). */
export function rangeBytes(ranges: readonly ByteRange[]): number {
  let n = 0;
  for (const r of ranges) n += r.end - r.start;
  return n;
}
