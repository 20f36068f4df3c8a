import { createHash, randomBytes } from 'node:crypto';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { TarBodyHasher, type HashStep } from '../../src/install/tar-body-hasher.ts';
import { buildTar, paddedBody, paxRecord, rawHeader } from '../helpers/archive.ts';
import { prng } from '../../src/base/prng.ts';

/** Runs the steps at once, in order (the relay runs them in slices). */
function runSteps(steps: HashStep[]): { offset: number; sha256: string }[] {
  const done: { offset: number; sha256: string }[] = [];
  for (const s of steps) {
    if (s.kind === 'update') s.hash.update(s.bytes);
    else done.push({ offset: s.offset, sha256: s.hash.digest('hex') });
  }
  return done;
}

/** tar-stream's reading, the oracle: each file entry's header offset and its body's SHA-256. */
async function oracle(buf: Buffer): Promise<Map<number, string>> {
  const want = new Map<number, string>();
  const x = tar.extract();
  x.on('entry', (h, stream, next) => {
    const hash = createHash('sha256');
    stream.on('data', (c: Buffer) => hash.update(c));
    stream.on('end', () => {
      if (h.type === 'file' || h.type === 'contiguous-file') want.set(stream.offset, hash.digest('hex'));
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    x.on('finish', resolve);
    x.on('error', reject);
    x.end(buf);
  });
  return want;
}

/** Feeds `buf` in random pieces; the steps of each piece run before the next piece is fed (as in the relay). */
function hashInPieces(buf: Buffer, seed: number): Map<number, string> {
  const rnd = prng(seed);
  const h = new TarBodyHasher(1 << 20);
  const got = new Map<number, string>();
  for (let i = 0; i < buf.length;) {
    const n = 1 + Math.floor(rnd() * 3000);
    for (const d of runSteps(h.plan(buf.subarray(i, i + n)))) {
      expect(got.has(d.offset), `offset ${d.offset} reported twice`).toBe(false);
      got.set(d.offset, d.sha256);
    }
    i += n;
  }
  return got;
}

describe('TarBodyHasher', () => {
  it('gives each file body the digest tar-stream reads, at its offset, however the stream is cut', async () => {
    const longName = `${'deep/'.repeat(30)}file.bin`;
    const pax = Buffer.from(paxRecord('path', 'pax/named-by-pax.txt') + paxRecord('mtime', '1700000000.5'));
    const buf = await buildTar([
      { type: 'directory', name: 'lib/' },
      { name: 'lib/a.so', content: randomBytes(70_000), mode: 0o755 },
      { name: 'empty', content: '' },
      { name: 'block', content: Buffer.alloc(512, 7) },
      { type: 'symlink', name: 'lib/b.so', linkname: 'a.so' },
      { type: 'link', name: 'lib/c.so', linkname: 'lib/a.so' },
      { name: longName, content: randomBytes(1234) }, // a long name header before it, as tar-stream packs it
      { type: 'raw', data: rawHeader('PaxHeader/x', 'x', pax.length) },
      { type: 'raw', data: paddedBody(pax) },
      { type: 'raw', data: rawHeader('short', '0', 5) },
      { type: 'raw', data: paddedBody(Buffer.from('hello')) },
      { name: 'last', content: randomBytes(3 << 20) },
    ]);
    const want = await oracle(buf);
    expect(want.size).toBe(6);
    for (const seed of [1, 2, 3]) expect(hashInPieces(buf, seed)).toEqual(want);
  });

  it('stops quietly at bytes the gate refuses (the extraction reports them), after the digests before them', async () => {
    const good = await buildTar([{ name: 'ok', content: 'fine' }]);
    const h = new TarBodyHasher(1 << 20);
    expect(runSteps(h.plan(good.subarray(0, 1024)))).toEqual([{ offset: 0, sha256: createHash('sha256').update('fine').digest('hex') }]);
    expect(h.plan(Buffer.alloc(512, 0x41))).toEqual([]); // a block with a bad checksum
    expect(h.plan(good)).toEqual([]); // nothing after it, even a good entry
  });
});
