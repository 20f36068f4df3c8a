import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readAhead } from '../../src/install/read-ahead.ts';

const CHUNK = 64 * 1024;
function chunks(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.alloc(CHUNK, i % 251));
}

/** A sink that takes `delayMs` per write and says "full" after each one: the slow tar side. */
function slowSink(delayMs: number) {
  const got: Buffer[] = [];
  let ended = false;
  const w = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _e, cb) {
      got.push(chunk);
      setTimeout(cb, delayMs);
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  return { w, got, ended: () => ended };
}

describe('readAhead', () => {
  it('passes every byte in order and ends the destination', async () => {
    const src = chunks(40);
    const sink = slowSink(0);
    readAhead(Readable.from(src, { objectMode: false }), sink.w, { maxBytes: 4 * CHUNK });
    await new Promise((r) => sink.w.on('finish', r));
    expect(sink.ended()).toBe(true);
    const h = (bs: Buffer[]) => createHash('sha256').update(Buffer.concat(bs)).digest('hex');
    expect(h(sink.got)).toBe(h(src));
  });

  it('queues at most maxBytes (plus one chunk) ahead of a slow destination, then pauses the source', async () => {
    let produced = 0;
    const src = new Readable({
      read() {
        if (produced >= 64) return this.push(null);
        produced++;
        this.push(Buffer.alloc(CHUNK, produced));
      },
    });
    const sink = slowSink(2);
    const ahead = readAhead(src, sink.w, { maxBytes: 4 * CHUNK });
    let peak = 0;
    const t = setInterval(() => { peak = Math.max(peak, ahead.queued()); }, 1);
    await new Promise((r) => sink.w.on('finish', r));
    clearInterval(t);
    expect(Buffer.concat(sink.got).length).toBe(64 * CHUNK);
    expect(peak).toBeGreaterThan(0); // it did run ahead
    expect(peak).toBeLessThanOrEqual(5 * CHUNK);
  });

  it('stop() drops the queue and writes nothing more', async () => {
    const src = new Readable({ read() {} });
    const sink = slowSink(0);
    const ahead = readAhead(src, sink.w, { maxBytes: 4 * CHUNK });
    src.push(Buffer.alloc(CHUNK));
    ahead.stop();
    src.push(Buffer.alloc(CHUNK));
    await new Promise((r) => setTimeout(r, 20));
    expect(sink.got.length).toBe(0);
    expect(ahead.queued()).toBe(0);
  });
});
