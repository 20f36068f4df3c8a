import { describe, expect, it } from 'vitest';
import { contiguousEnd, mergeRanges, missingRanges, rangeBytes, segmentSize, splitRanges } from '../../src/fetch/byte-ranges.ts';

const r = (start: number, end: number) => ({ start, end });

describe('byte ranges', () => {
  it('merges overlapping and touching ranges, drops empty ones, sorts', () => {
    expect(mergeRanges([r(10, 20), r(0, 5), r(5, 8), r(15, 30), r(40, 40)])).toEqual([r(0, 8), r(10, 30)]);
  });

  it('the contiguous end from an offset stops at the first gap', () => {
    expect(contiguousEnd([r(0, 10), r(10, 20), r(30, 40)], 0)).toBe(20);
    expect(contiguousEnd([r(0, 10)], 5)).toBe(10);
    expect(contiguousEnd([r(5, 10)], 0)).toBe(0);
  });

  it('missing ranges are the gaps of [from, to)', () => {
    expect(missingRanges([r(0, 10), r(20, 30)], 0, 40)).toEqual([r(10, 20), r(30, 40)]);
    expect(missingRanges([], 5, 9)).toEqual([r(5, 9)]);
    expect(missingRanges([r(0, 100)], 0, 50)).toEqual([]);
    expect(missingRanges([r(15, 25)], 10, 20)).toEqual([r(10, 15)]);
  });

  it('splits into segments of at most the size, the last one shorter', () => {
    expect(splitRanges([r(0, 10), r(20, 23)], 4)).toEqual([r(0, 4), r(4, 8), r(8, 10), r(20, 23)]);
    expect(rangeBytes(splitRanges([r(3, 1000)], 7))).toBe(997);
  });

  it('segment size: about four per connection within the bounds', () => {
    expect(segmentSize(64 << 20, 8)).toBe(2 << 20);
    expect(segmentSize(1 << 20, 8)).toBe(1 << 20);
    expect(segmentSize(8 * 2 ** 30, 8)).toBe(16 << 20);
  });
});
