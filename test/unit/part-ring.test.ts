/**
 * The shared ring a fast link's bytes take instead of the `.part`
 * (`src/install/part-ring.ts`): the reader gets back exactly the bytes
 * written, in order, across wrap-arounds and writes larger than the ring;
 * the writer waits for room, tells the reader how far it got before it
 * waits, and fails when the reader is gone.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PartRing, copyOut } from '../../src/install/part-ring.ts';

/** A reader that copies out whatever the writer announced, `step` bytes at a time, and frees it. */
function drain(ring: PartRing, step: number) {
  const view = new Uint8Array(ring.buffer);
  const out: Buffer[] = [];
  let read = ring.from;
  const take = (upto: number) => {
    while (read < upto) {
      const n = Math.min(step, upto - read);
      const dst = Buffer.alloc(n);
      copyOut(view, ring.from, read, dst);
      out.push(dst);
      read += n;
      ring.release(read);
    }
  };
  return { out, take, read: () => read };
}

describe('PartRing', () => {
  it('gives back every byte in order across wrap-arounds, with writes larger than the ring, starting at an archive offset', async () => {
    const from = 5_000_003;
    let reader: ReturnType<typeof drain> | undefined;
    const announced: number[] = [];
    // The reader hears of bytes only when the writer is about to wait (or at the end), as the hash worker does.
    const ring = new PartRing(from, (written) => { announced.push(written); queueMicrotask(() => reader!.take(written)); }, 1000);
    reader = drain(ring, 333);
    const bufs = [randomBytes(10), randomBytes(999), randomBytes(2500), randomBytes(1), randomBytes(1000), randomBytes(4321)];
    await ring.write(bufs.slice(0, 3));
    await ring.write(bufs.slice(3));
    reader.take(ring.end);
    const all = Buffer.concat(bufs);
    expect(ring.end).toBe(from + all.length);
    expect(Buffer.concat(reader.out).equals(all), 'the bytes read back are not the bytes written').toBe(true);
    expect(announced.length, 'the writer never waited for room in a ring smaller than its writes').toBeGreaterThan(5);
    for (let i = 1; i < announced.length; i++) expect(announced[i]!).toBeGreaterThan(announced[i - 1]!);
  });

  it('never overwrites bytes the reader has not freed', async () => {
    const ring = new PartRing(0, () => undefined, 100);
    await ring.write([Buffer.alloc(100, 7)]);
    let done = false;
    const more = ring.write([Buffer.alloc(30, 9)]).then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 10));
    expect(done, 'a full ring took more bytes').toBe(false);
    const view = new Uint8Array(ring.buffer);
    expect(view.every((b) => b === 7)).toBe(true);
    ring.release(20);
    await new Promise((r) => setTimeout(r, 10));
    expect(done, 'freeing 20 bytes let a 30-byte write finish').toBe(false);
    expect(view.subarray(0, 20).every((b) => b === 9)).toBe(true);
    expect(view.subarray(20).every((b) => b === 7)).toBe(true);
    ring.release(40);
    await more;
    const dst = Buffer.alloc(30);
    copyOut(view, 0, 100, dst);
    expect(dst.every((b) => b === 9)).toBe(true);
  });

  it('fails a write waiting for room, and every later one, when the reader is gone', async () => {
    const ring = new PartRing(0, () => undefined, 64);
    const waiting = ring.write([Buffer.alloc(100)]);
    ring.fail(new Error('the hash worker was stopped'));
    await expect(waiting).rejects.toThrow('the hash worker was stopped');
    await expect(ring.write([Buffer.alloc(1)])).rejects.toThrow('the hash worker was stopped');
  });
});
