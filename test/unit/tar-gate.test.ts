import { describe, expect, it } from 'vitest';
import { GateRefusal, TarGate } from '../../src/install/tar-gate.ts';
import { numericField, parsePax, sparseFormat } from '../../src/install/tar-headers.ts';
import { buildTar, paddedBody, paxRecord, rawHeader } from '../helpers/archive.ts';

/** Feeds `buf` in pieces of `step` bytes; returns what was handed on and the refusal (with where it came), if any. */
function feedAll(g: TarGate, buf: Buffer, step: number): { out: Buffer; refusal?: GateRefusal & { at: number } } {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += step) {
    try {
      out.push(...g.feed(buf.subarray(i, i + step)));
    } catch (err) {
      return { out: Buffer.concat(out), refusal: Object.assign(err as GateRefusal, { at: i }) };
    }
  }
  try {
    g.end();
  } catch (err) {
    return { out: Buffer.concat(out), refusal: Object.assign(err as GateRefusal, { at: buf.length }) };
  }
  return { out: Buffer.concat(out) };
}

const pax = (...recs: [string, string][]) => Buffer.from(recs.map(([k, v]) => paxRecord(k, v)).join(''));
const paxEntry = (body: Buffer, name = 'PaxHeader/f') => [{ type: 'raw' as const, data: rawHeader(name, 'x', body.length) }, { type: 'raw' as const, data: paddedBody(body) }];

describe('tar headers', () => {
  it('reads numeric fields as GNU tar does: octal with spaces, base-256; garbage is undefined', () => {
    expect(numericField(Buffer.from('00000001750\0'))).toBe(1000);
    expect(numericField(Buffer.from('   1750 \0\0\0\0'))).toBe(1000);
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256[7] = 1;
    expect(numericField(b256)).toBe(2 ** 32);
    expect(numericField(Buffer.from('0000001x750\0'))).toBeUndefined();
    expect(numericField(Buffer.alloc(12))).toBeUndefined();
    expect(numericField(Buffer.from('00000009\0\0\0\0'))).toBeUndefined();
  });

  it('parses pax records strictly and names the sparse formats', () => {
    const ok = parsePax(pax(['path', 'a=b'], ['size', '12']));
    expect(ok.ok && ok.records.get('path')!.toString()).toBe('a=b');
    expect(parsePax(Buffer.from('99 path=x\n'))).toMatchObject({ ok: false });
    expect(parsePax(Buffer.from('9 path=xy\n'))).toMatchObject({ ok: false }); // says 9 bytes, the record is 10
    expect(parsePax(Buffer.from('7 path\n'))).toMatchObject({ ok: false, reason: expect.stringMatching(/key=value/) });
    expect(parsePax(Buffer.from('011 path=x\n'))).toMatchObject({ ok: false });
    const sp = (recs: [string, string][]) => { const r = parsePax(pax(...recs)); return r.ok ? sparseFormat(r.records) : 'bad'; };
    expect(sp([['GNU.sparse.size', '10'], ['GNU.sparse.numblocks', '1']])).toBe('0.0');
    expect(sp([['GNU.sparse.map', '0,10']])).toBe('0.1');
    expect(sp([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0']])).toBe('1.0');
    expect(sp([['path', 'x']])).toBeUndefined();
  });
});

describe('TarGate', () => {
  it('names an over-limit pax header on its header block, before its body, however the bytes are split', async () => {
    const body = Buffer.from(paxRecord('comment', 'x'.repeat(5000)));
    const tar = await buildTar([{ name: 'before', content: 'y'.repeat(700) }, ...paxEntry(body), { name: 'f', content: 'x' }]);
    for (const step of [1, 7, 512, 4096, tar.length]) {
      const { refusal } = feedAll(new TarGate(4096), tar, step);
      expect(refusal).toMatchObject({ code: 'ERR_ARCHIVE_LIMIT', entry: 'PaxHeader/f', data: { value: 512 + Math.ceil(body.length / 512) * 512 } });
      // Seen within the header block after `before` (512 + 1024 bytes in), not after the body.
      expect(refusal!.at).toBeLessThan(512 + 1024 + 512);
    }
  });

  it('follows a pax size override to find the next header, and queues each entry as GNU tar reads it', async () => {
    const tar = await buildTar([
      ...paxEntry(pax(['size', '2000'], ['path', 'big-name'])),
      // The ustar size field says 0; the pax record says 2000: the body is 2000 bytes.
      { type: 'raw', data: rawHeader('big', '0', 0) }, { type: 'raw', data: paddedBody(Buffer.alloc(2000, 1)) },
      { type: 'raw', data: rawHeader('././@LongLink', 'L', 9001) }, { type: 'raw', data: paddedBody(Buffer.concat([Buffer.alloc(9000, 97), Buffer.alloc(1)])) },
      { name: 'after', content: 'z' },
    ]);
    const g = new TarGate(1 << 20);
    const { out, refusal } = feedAll(g, tar, 333);
    expect(refusal).toBeUndefined();
    expect(g.take(1024)).toMatchObject({ name: 'big-name', size: 2000, flag: '0' });
    expect(g.take(1024 + 512 + 2048 + 512 + 9216)).toMatchObject({ size: 1 }); // 'after' carries the 9000-byte long name;
    // The end-of-archive blocks are not handed on.
    expect(out.length).toBe(tar.length - 1024);
    expect(feedAll(new TarGate(8192), tar, 333).refusal).toMatchObject({ code: 'ERR_ARCHIVE_LIMIT', entry: '././@LongLink' });
  });

  it('hands on nothing after the first zero block (#29), and drops an empty pax header (#30)', async () => {
    const first = await buildTar([...paxEntry(Buffer.alloc(0)), { name: 'a', content: 'A' }]);
    const second = await buildTar([{ name: 'b', content: 'B' }]);
    const g = new TarGate(1 << 20);
    const { out, refusal } = feedAll(g, Buffer.concat([first, second]), 100);
    expect(refusal).toBeUndefined();
    expect(g.ended).toBe(true);
    expect(out.length).toBe(1024); // a's header and body only
    expect(g.take(0)).toMatchObject({ name: 'a' });
    expect(g.take(0)).toBeUndefined();
  });

  it('refuses what GNU tar and tar-stream could read differently', async () => {
    const refuse = async (entries: Parameters<typeof buildTar>[0], want: Record<string, unknown>) => {
      expect(feedAll(new TarGate(1 << 20), await buildTar(entries), 512).refusal).toMatchObject(want);
    };
    const latin1 = rawHeader('x', '0', 0);
    latin1.write('caf\xe9', 0, 'latin1');
    fixSum(latin1);
    await refuse([{ type: 'raw', data: latin1 }], { code: 'ERR_ARCHIVE_PATH', entry: 'caf\\xe9', reason: expect.stringMatching(/not valid UTF-8/) });
    await refuse([...paxEntry(Buffer.from('99 path=x\n')), { name: 'f', content: '' }], { code: 'ERR_ARCHIVE_CORRUPT', entry: 'PaxHeader/f', reason: expect.stringMatching(/malformed pax header/) });
    await refuse([...paxEntry(pax(['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 'disk.img'])), { name: 'f', content: '' }], { code: 'ERR_ARCHIVE_ENTRY_TYPE', entry: 'disk.img', reason: expect.stringMatching(/sparse file/) });
    const v7 = rawHeader('old', '0', 0);
    v7.fill(0, 257, 265);
    fixSum(v7);
    await refuse([{ type: 'raw', data: v7 }], { code: 'ERR_ARCHIVE_FORMAT', reason: expect.stringMatching(/v7/) });
    const badSum = rawHeader('f', '0', 0);
    badSum[0] = 0x67;
    await refuse([{ name: 'ok', content: '' }, { type: 'raw', data: badSum }], { code: 'ERR_ARCHIVE_CORRUPT', entry: 'ok', reason: expect.stringMatching(/checksum/) });
    const badMode = rawHeader('f', '0', 0);
    badMode.write('07x4\0', 100, 'latin1');
    fixSum(badMode);
    await refuse([{ type: 'raw', data: badMode }], { code: 'ERR_ARCHIVE_CORRUPT', reason: expect.stringMatching(/mode field/) });
  });

  it('refuses an archive cut inside a header or a body', async () => {
    const tar = await buildTar([{ name: 'blob', content: 'x'.repeat(3000) }]);
    for (const cut of [100, 512 + 1000, 512 + 3072 - 1]) {
      expect(feedAll(new TarGate(1 << 20), tar.subarray(0, cut), 64).refusal).toMatchObject({ code: 'ERR_ARCHIVE_CORRUPT', reason: expect.stringMatching(/cut short/) });
    }
    // Cut exactly after the last body: no end blocks, but nothing missing (GNU tar reads it).
    expect(feedAll(new TarGate(1 << 20), tar.subarray(0, 512 + 3072), 64).refusal).toBeUndefined();
  });
});

function fixSum(h: Buffer): void {
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}
