import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../src/base/line-splitter.ts';
import { OutputBudget } from '../../src/supervise/output-budget.ts';

const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s));

function all(sp: LineSplitter, chunks: Buffer[]) {
  return [...chunks.flatMap((c) => sp.push(c)), ...sp.end()];
}

describe('LineSplitter', () => {
  it('splits lines and carries partial ones across chunks', () => {
    const sp = new LineSplitter();
    expect(sp.push(b('one\ntw'))).toEqual([{ line: 'one', truncated: false }]);
    expect(sp.push(b('o\nthr'))).toEqual([{ line: 'two', truncated: false }]);
    expect(sp.push(b('ee'))).toEqual([]);
    expect(sp.end()).toEqual([{ line: 'three', truncated: false }]);
    expect(sp.end()).toEqual([]);
  });

  it('keeps empty lines and strips CRLF', () => {
    const sp = new LineSplitter();
    expect(all(sp, [b('a\r\n\nb\r\n')]).map((l) => l.line)).toEqual(['a', '', 'b']);
  });

  it('reassembles a multi-byte character split across chunks', () => {
    const bytes = b('héllo ✓\n');
    const sp = new LineSplitter();
    // Cut inside "é" and inside "✓".
    const out = all(sp, [bytes.subarray(0, 2), bytes.subarray(2, 8), bytes.subarray(8)]);
    expect(out).toEqual([{ line: 'héllo ✓', truncated: false }]);
  });

  it('makes invalid UTF-8 safe', () => {
    const sp = new LineSplitter();
    const [l] = all(sp, [b([0x61, 0xff, 0xfe, 0x62, 0xc3, 0x0a])]);
    expect(l!.line).toBe('a\uFFFD\uFFFDb\uFFFD');
    expect(() => JSON.parse(JSON.stringify(l))).not.toThrow();
  });

  it('keeps ANSI escapes verbatim', () => {
    const sp = new LineSplitter();
    const colored = '\u001b[32mINFO\u001b[0m ready';
    const [l] = all(sp, [b(colored + '\n')]);
    expect(l!.line).toBe(colored);
    expect(JSON.parse(JSON.stringify({ line: l!.line })).line).toBe(colored);
  });

  it('cuts a long line at the cap, flags it, and skips the rest up to the newline', () => {
    const sp = new LineSplitter({ maxLineBytes: 8 });
    const out = all(sp, [b('0123456789abc'), b('def\nshort\n')]);
    expect(out).toEqual([
      { line: '01234567', truncated: true },
      { line: 'short', truncated: false },
    ]);
    expect(sp.droppedBytes).toBe(8);
  });

  it('truncates a line that grows past the cap across many chunks, emitting it once', () => {
    const sp = new LineSplitter({ maxLineBytes: 16 });
    const chunks = Array.from({ length: 100 }, () => b('x'.repeat(10)));
    const out = all(sp, [...chunks, b('\nnext\n')]);
    expect(out).toEqual([{ line: 'x'.repeat(16), truncated: true }, { line: 'next', truncated: false }]);
    expect(sp.droppedBytes).toBe(1000 - 16);
  });

  it('never cuts inside a multi-byte character', () => {
    const sp = new LineSplitter({ maxLineBytes: 8 });
    // "aaaaaaa" + "é" (2 bytes) crosses the 8-byte cap.
    const [l] = all(sp, [b('aaaaaaaé and more\n')]);
    expect(l).toEqual({ line: 'aaaaaaa', truncated: true });
  });

  it('handles a 1 MB line in one chunk with bounded output', () => {
    const sp = new LineSplitter();
    const out = all(sp, [Buffer.alloc(1024 * 1024, 0x41), b('\nok\n')]);
    expect(out).toHaveLength(2);
    expect(out[0]!.truncated).toBe(true);
    expect(Buffer.byteLength(out[0]!.line)).toBe(16 * 1024);
    expect(out[1]!.line).toBe('ok');
  });

  it('does not keep references to the caller\'s chunk', () => {
    const sp = new LineSplitter();
    const chunk = b('abc');
    sp.push(chunk);
    chunk.fill(0x7a);
    expect(sp.end()).toEqual([{ line: 'abc', truncated: false }]);
  });

  it('rejects a silly cap', () => {
    expect(() => new LineSplitter({ maxLineBytes: 0 })).toThrow(/maxLineBytes/);
  });
});

describe('OutputBudget', () => {
  it('allows a burst, then drops, then refills with time', () => {
    const bu = new OutputBudget({ bytesPerSecond: 1000, burstBytes: 300, lineOverhead: 0 }, 0);
    expect([bu.take(100, 0), bu.take(100, 0), bu.take(100, 0), bu.take(100, 0)]).toEqual([true, true, true, false]);
    expect(bu.takeDropped()).toBe(1);
    expect(bu.takeDropped()).toBe(0);
    expect(bu.take(100, 50)).toBe(false); // 50 tokens back, not enough
    expect(bu.take(100, 150)).toBe(true); // 100 more
    expect(bu.droppedTotal).toBe(2);
  });

  it('never accumulates more than the burst', () => {
    const bu = new OutputBudget({ bytesPerSecond: 1000, burstBytes: 200, lineOverhead: 0 }, 0);
    expect(bu.take(200, 1_000_000)).toBe(true);
    expect(bu.take(1, 1_000_000)).toBe(false);
  });
});
