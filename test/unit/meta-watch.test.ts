import { describe, expect, it } from 'vitest';
import { headerSize, MetaHeaderWatch, paxSize } from '../../src/install/meta-watch.ts';
import { buildTar, paddedBody, paxRecord, rawHeader } from '../helpers/archive.ts';

/** Feeds `buf` in pieces of `step` bytes, returning the first overflow. */
function feedAll(w: MetaHeaderWatch, buf: Buffer, step: number) {
  for (let i = 0; i < buf.length; i += step) {
    const o = w.feed(buf.subarray(i, i + step));
    if (o) return { ...o, at: i };
  }
  return undefined;
}

describe('MetaHeaderWatch', () => {
  it('parses octal and GNU base-256 sizes, and pax size records', () => {
    expect(headerSize(Buffer.from('00000001750\0'))).toBe(1000);
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256.writeUInt32BE(5 * 2 ** 30 >>> 0, 8); // lower bits only; with the high word below
    b256[7] = 1; // 2^32
    expect(headerSize(b256)).toBe(2 ** 32 + ((5 * 2 ** 30) >>> 0));
    expect(paxSize(Buffer.from(paxRecord('path', 'a') + paxRecord('size', '123456')))).toBe(123456);
    expect(paxSize(Buffer.from(paxRecord('path', 'a')))).toBeUndefined();
  });

  it('names an over-limit pax header on its header block, before its body, however the bytes are split', async () => {
    const body = Buffer.from(paxRecord('comment', 'x'.repeat(5000)));
    const tar = await buildTar([{ name: 'before', content: 'y'.repeat(700) }, { type: 'raw', data: rawHeader('PaxHeader/f', 'x', body.length) }, { type: 'raw', data: paddedBody(body) }, { name: 'f', content: 'x' }]);
    for (const step of [1, 7, 512, 4096, tar.length]) {
      const over = feedAll(new MetaHeaderWatch(4096), tar, step);
      expect(over).toMatchObject({ type: 'x', name: 'PaxHeader/f', bytes: 512 + Math.ceil(body.length / 512) * 512 });
      // Seen within the header block after `before` (512 + 1024 bytes in), not after the body.
      expect(over!.at).toBeLessThan(512 + 1024 + 512);
    }
  });

  it('lets headers within the limit through, following a pax size override to find the next header', async () => {
    const pax = Buffer.from(paxRecord('size', '2000'));
    const tar = await buildTar([
      { type: 'raw', data: rawHeader('PaxHeader/big', 'x', pax.length) }, { type: 'raw', data: paddedBody(pax) },
      // The ustar size field says 0; the pax record says 2000: the body is 2000 bytes.
      { type: 'raw', data: rawHeader('big', '0', 0) }, { type: 'raw', data: paddedBody(Buffer.alloc(2000, 1)) },
      { type: 'raw', data: rawHeader('././@LongLink', 'L', 9000) }, { type: 'raw', data: paddedBody(Buffer.alloc(9000, 97)) },
      { name: 'after', content: 'z' },
    ]);
    expect(feedAll(new MetaHeaderWatch(1 << 20), tar, 333)).toBeUndefined();
    // Had the override been missed, the 2000 body bytes would be read as headers and the LongLink missed.
    expect(feedAll(new MetaHeaderWatch(8192), tar, 333)).toMatchObject({ type: 'L', name: '././@LongLink' });
  });
});
