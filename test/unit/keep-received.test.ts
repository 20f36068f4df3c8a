import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pipeKeepingReceived } from '../../src/fetch/keep-received.ts';

/** A destination that takes 10 ms per write and buffers up to 1 MiB meanwhile, as the `.part` feed does. */
function slowDest(failOn?: number) {
  const got: Buffer[] = [];
  const w = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, cb) {
      if (failOn !== undefined && got.length === failOn) return setTimeout(() => cb(new Error('ENOSPC: no space left')), 5);
      got.push(chunk);
      setTimeout(cb, 10);
    },
  });
  return { w, got };
}

describe('pipeKeepingReceived', () => {
  it('writes out every chunk the destination buffered before passing on a source that breaks', async () => {
    const sent = Array.from({ length: 6 }, (_, i) => Buffer.alloc(64 << 10, i));
    const src = new Readable({ read() {} });
    for (const c of sent) src.push(c);
    const dest = slowDest();
    const done = pipeKeepingReceived(src, dest.w);
    // All six are handed over at once; the first write is still on "disk" when the body breaks.
    setTimeout(() => src.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), 2);
    await expect(done).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(dest.got.length).toBe(6);
    expect(Buffer.concat(dest.got).equals(Buffer.concat(sent))).toBe(true);
  });

  it('passes a premature close (no error, no end) on as an error, after the buffered chunks', async () => {
    const src = new Readable({ read() {} });
    src.push(Buffer.alloc(1000, 1));
    src.push(Buffer.alloc(1000, 2));
    const dest = slowDest();
    const done = pipeKeepingReceived(src, dest.w);
    setTimeout(() => src.destroy(), 2);
    await expect(done).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(dest.got.map((b) => b[0])).toEqual([1, 2]);
  });

  it('resolves on a clean end with every byte, and the destination ended', async () => {
    const dest = slowDest();
    await pipeKeepingReceived(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), dest.w);
    expect(Buffer.concat(dest.got).toString()).toBe('abcd');
    expect(dest.w.writableFinished).toBe(true);
  });

  it('a failing destination wins: the source is destroyed and its error is the one passed on', async () => {
    const src = new Readable({ read() {} });
    for (let i = 0; i < 4; i++) src.push(Buffer.alloc(100, i));
    const dest = slowDest(1);
    await expect(pipeKeepingReceived(src, dest.w)).rejects.toThrow(/ENOSPC/);
    expect(src.destroyed).toBe(true);
    expect(dest.got.length).toBe(1);
  });
});
