/**
 * Format 2 of the chunk index: the head / pages / leaves tree, what a client
 * holding the previous version's index fetches, and that every part is
 * checked against the hash above it (hand-built indexes, an in-memory
 * RangeSource; test/e2e/chunked-install.test.ts does the same over HTTP).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DownloadError } from '../../src/base/errors.ts';
import { decodeIndex, encodeIndex, indexDigest, leafParts, parseHead, type ChunkIndex, type IndexEntry, type IndexMember } from '../../src/install/chunked/index-format.ts';
import { fetchIndexFile, knownParts, planIndexRuns } from '../../src/install/chunked/index-fetch.ts';
import type { RangeSource } from '../../src/install/chunked/range-source.ts';

const h = (s: string) => createHash('sha256').update(s).digest('hex');

/** `n` files, each a metadata member (its header) and one data member of 1024 bytes; the end marker in the last metadata member. */
function bigIndex(n: number, changed = new Set<number>()): ChunkIndex {
  const members: IndexMember[] = [];
  const entries: IndexEntry[] = [];
  let tar = 0;
  let gz = 0;
  const add = (tarLength: number, sha256: string) => {
    members.push({ gzOffset: gz, gzLength: 40, tarOffset: tar, tarLength, sha256 });
    gz += 40;
    tar += tarLength;
  };
  for (let i = 0; i < n; i++) {
    const v = changed.has(i) ? 'v2' : 'v1';
    add(512, '');
    entries.push({ name: `pkg/m${i % 7}/file-${i}.py`, type: 'file', mode: 0o644, size: 1024, headerOffset: tar - 512, dataOffset: tar, sha256: h(`${i}${v}`) });
    add(1024, h(`member ${i}${v}`));
  }
  add(1024, '');
  return { archiveSize: gz, archiveSha256: h('archive'), tarSize: tar, avgChunk: 8192, members, entries };
}

/** The bytes of `file` by range, counting what it serves; `ranges: false` answers like a server without them. */
function memorySource(file: Buffer, o: { ranges?: boolean } = {}): RangeSource & { served: number; requests: number } {
  const src = {
    served: 0,
    requests: 0,
    async range(_url: string, start: number, end: number) {
      src.requests++;
      if (o.ranges === false) throw new DownloadError('ERR_RANGE_UNSUPPORTED', 'Cannot download: no ranges');
      src.served += end - start;
      return Readable.from([file.subarray(start, end)]);
    },
    async whole() {
      src.requests++;
      src.served += file.length;
      return file;
    },
  };
  return src;
}

const req = (file: Buffer) => ({ component: 'core', version: '2', url: 'http://127.0.0.1/core.tar.gz.index', sha256: indexDigest(file), size: file.length });
const signal = new AbortController().signal;

describe('index format 2: head, pages, leaves', () => {
  const v1 = encodeIndex(bigIndex(400));
  it('round-trips a tree of several pages, metadata members without hashes included', () => {
    const head = parseHead(v1);
    expect(head.pages.length).toBeGreaterThan(5);
    expect(head.leaves).toBeGreaterThan(head.pages.length * 3);
    expect(decodeIndex(v1)).toEqual(bigIndex(400));
  });

  it('refuses a flipped byte in the head (another digest), in a page, in a leaf', () => {
    const head = parseHead(v1);
    const flip = (at: number) => {
      const b = Buffer.from(v1);
      b[at]! ^= 0x10;
      return b;
    };
    expect(indexDigest(flip(head.headEnd - 3))).not.toBe(indexDigest(v1));
    const page = head.pages[2]!;
    expect(() => decodeIndex(flip(page.offset + page.length - 1))).toThrow(/page 2 does not match its hash/);
    const leaves = leafParts(head, head.pages.map((p) => v1.subarray(p.offset, p.offset + p.length)));
    expect(() => decodeIndex(flip(leaves[7]!.offset + 1))).toThrow(/leaf 7 does not match its hash/);
  });

  it('refuses a member without a hash that holds file data', () => {
    const ix = bigIndex(3);
    ix.members[1]!.sha256 = '';
    expect(() => encodeIndex(ix)).toThrow(/member 1 has no hash but holds data of "pkg\/m0\/file-0.py"/);
  });
});

describe('fetching an index next to a kept one', () => {
  const v1 = encodeIndex(bigIndex(400));
  const v2 = encodeIndex(bigIndex(400, new Set([10, 200, 333])));

  it('fetches the head and only the pages and leaves the kept index lacks, and rebuilds the exact file', async () => {
    const src = memorySource(v2);
    const got = await fetchIndexFile(req(v2), src, signal, [v1]);
    expect(got.file.equals(v2)).toBe(true);
    expect(got.index).toEqual(bigIndex(400, new Set([10, 200, 333])));
    // What the pure planner says is exactly what was served.
    const head = parseHead(v2);
    const known = knownParts([v1]);
    const runs = [...planIndexRuns(head.pages, known), ...planIndexRuns(leafParts(head, head.pages.map((p) => v2.subarray(p.offset, p.offset + p.length))), known)];
    expect(src.served).toBe(head.headEnd + runs.reduce((n, r) => n + r.end - r.start, 0));
    expect(got.fetched).toBe(src.served);
    expect(src.requests).toBe(2 + runs.length);
    expect(src.served).toBeLessThan(v2.length * 0.15);
  });

  it('without a kept index fetches the whole file in one GET; without ranges too', async () => {
    const a = memorySource(v2);
    expect((await fetchIndexFile(req(v2), a, signal)).file.equals(v2)).toBe(true);
    expect(a.served).toBe(v2.length);
    expect(a.requests).toBe(1);
    const b = memorySource(v2, { ranges: false });
    expect((await fetchIndexFile(req(v2), b, signal, [v1])).file.equals(v2)).toBe(true);
    expect(b.served).toBe(v2.length);
  });

  it('refuses a flipped byte in the head, or in a page or leaf it fetches; one it takes from the kept index is never read from the server', async () => {
    const head = parseHead(v2);
    const leaves = leafParts(head, head.pages.map((p) => v2.subarray(p.offset, p.offset + p.length)));
    const known = knownParts([v1]);
    const fetchedLeaf = leaves.find((l) => !known.has(l.sha256))!;
    const keptLeaf = leaves.find((l) => known.has(l.sha256))!;
    const fetchedPage = head.pages.find((p) => !known.has(p.sha256))!;
    const flip = (at: number) => {
      const b = Buffer.from(v2);
      b[at]! ^= 0x01;
      return b;
    };
    await expect(fetchIndexFile(req(v2), memorySource(flip(20)), signal, [v1])).rejects.toMatchObject({ code: 'ERR_DIGEST_MISMATCH' });
    await expect(fetchIndexFile(req(v2), memorySource(flip(fetchedPage.offset + 3)), signal, [v1])).rejects.toMatchObject({ code: 'ERR_INDEX_INVALID' });
    await expect(fetchIndexFile(req(v2), memorySource(flip(fetchedLeaf.offset + 3)), signal, [v1])).rejects.toMatchObject({ code: 'ERR_INDEX_INVALID' });
    const ok = await fetchIndexFile(req(v2), memorySource(flip(keptLeaf.offset + 3)), signal, [v1]);
    expect(ok.file.equals(v2)).toBe(true);
  });

  it('accepts the SHA-256 of the whole file as the bound digest (an OCI layer descriptor), fetching it whole; refuses a flipped byte then too', async () => {
    const whole = { ...req(v2), sha256: createHash('sha256').update(v2).digest('hex') };
    const src = memorySource(v2);
    const got = await fetchIndexFile(whole, src, signal, [v1]);
    expect(got.file.equals(v2)).toBe(true);
    expect(src.served).toBe(v2.length);
    const noSize = { ...whole, size: undefined };
    expect((await fetchIndexFile(noSize, memorySource(v2), signal, [v1])).file.equals(v2)).toBe(true);
    const bad = Buffer.from(v2);
    bad[bad.length - 2]! ^= 1;
    await expect(fetchIndexFile(whole, memorySource(bad), signal, [v1])).rejects.toMatchObject({ code: 'ERR_DIGEST_MISMATCH' });
    await expect(fetchIndexFile(whole, memorySource(bad, { ranges: false }), signal, [v1])).rejects.toMatchObject({ code: 'ERR_DIGEST_MISMATCH' });
  });

  it('refuses an index for another archive after its head, fetching nothing more', async () => {
    const src = memorySource(v2);
    await expect(fetchIndexFile({ ...req(v2), archive: { sha256: h('another archive') } }, src, signal, [v1])).rejects.toMatchObject({ code: 'ERR_INDEX_MISMATCH' });
    expect(src.served).toBe(parseHead(v2).headEnd);
  });

  it('a damaged kept index only costs bytes: its parts no longer match and are fetched', async () => {
    const damaged = Buffer.from(v1);
    for (let i = parseHead(v1).fileSize; i < damaged.length; i += 97) damaged[i]! ^= 0xff;
    const src = memorySource(v2);
    const got = await fetchIndexFile(req(v2), src, signal, [damaged]);
    expect(got.file.equals(v2)).toBe(true);
    expect(src.served).toBeGreaterThan(v2.length * 0.5);
  });
});
