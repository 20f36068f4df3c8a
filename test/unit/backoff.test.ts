import { describe, expect, it } from 'vitest';
import { backoffDelay, parseRetryAfter } from '../../src/base/backoff.ts';

describe('parseRetryAfter', () => {
  it('reads seconds', () => { expect(parseRetryAfter('7')).toBe(7000); });
  it('reads an HTTP date relative to now', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now)).toBe(0);
  });
  it('returns undefined for garbage or nothing', () => {
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('-1')).toBeUndefined();
  });
});

describe('backoffDelay', () => {
  it('grows exponentially under full jitter, capped', () => {
    const top = () => 0.999999;
    expect(backoffDelay({ attempt: 1, initialMs: 100, maxMs: 1000, random: top })).toBe(99);
    expect(backoffDelay({ attempt: 3, initialMs: 100, maxMs: 1000, random: top })).toBe(399);
    expect(backoffDelay({ attempt: 10, initialMs: 100, maxMs: 1000, random: top })).toBe(999);
    expect(backoffDelay({ attempt: 5000, initialMs: 100, maxMs: 1000, random: top })).toBe(999);
  });
  it('jitters down to zero', () => {
    expect(backoffDelay({ attempt: 4, initialMs: 100, random: () => 0 })).toBe(0);
  });
  it('stays within [0, cap] for random picks', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay({ attempt: 1 + (i % 8), initialMs: 50, maxMs: 2000 });
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });
  it('waits at least Retry-After, up to its own cap', () => {
    expect(backoffDelay({ attempt: 1, initialMs: 100, random: () => 0, retryAfter: '3' })).toBe(3000);
    expect(backoffDelay({ attempt: 1, retryAfter: '86400', maxRetryAfterMs: 60_000, random: () => 0 })).toBe(60_000);
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(backoffDelay({ attempt: 1, random: () => 0, retryAfter: 'Wed, 21 Oct 2015 07:28:02 GMT', now })).toBe(2000);
  });
  it('ignores an unparsable Retry-After', () => {
    expect(backoffDelay({ attempt: 2, initialMs: 100, random: () => 0.5, retryAfter: 'later' })).toBe(100);
  });
});
