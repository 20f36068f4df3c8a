/**
 * The pure parts of chunked archives: the gear chunker, the index format
 * and its checks, the tree plan's hostile-input rules, and the reuse
 * planner (hand-built indexes, as electron-updater tests computeOperations).
 */
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunkSizes, GearChunker } from '../../src/pack/chunker.ts';
import { ChunkedGzip } from '../../src/pack/chunked-gzip.ts';
import { buildTar } from '../helpers/archive.ts';
import { decodeIndex, encodeIndex, type ChunkIndex, type IndexEntry } from '../../src/install/chunked/index-format.ts';
import { computeReusePlan } from '../../src/install/chunked/reuse-plan.ts';
import { planTree } from '../../src/install/chunked/tree-plan.ts';

const LIMITS = { maxEntries: 100, maxExpansionRatio: 100, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 64, maxExtractedBytes: 1 << 30 };
const h = (s: string) => createHash('sha256').update(s).digest('hex');

function cuts(data: Buffer, avg: number): number[] {
  const g = new GearChunker(chunkSizes(avg));
  const out: number[] = [];
  for (let i = 0; i < data.length;) {
    const k = g.feed(data.subarray(i), 0);
    if (k < 0) break;
    i += k;
    out.push(i);
  }
  return out;
}

describe('gear chunker', () => {
  const data = randomBytes(2 << 20);
  it('cuts between min and max, around the average', () => {
    const c = cuts(data, 16384);
    const sizes = c.map((x, i) => x - (i ? c[i - 1]! : 0));
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(4096);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(65536);
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(mean).toBeGreaterThan(8192);
    expect(mean).toBeLessThan(32768);
  });
  it('resynchronises after an insertion: later boundaries move by exactly the inserted length', () => {
    const ins = Buffer.concat([data.subarray(0, 700_000), randomBytes(3000), data.subarray(700_000)]);
    const a = new Set(cuts(data, 16384).filter((x) => x > 800_000));
    const b = cuts(ins, 16384).filter((x) => x > 803_000).map((x) => x - 3000);
    expect(b.filter((x) => a.has(x)).length).toBeGreaterThan(b.length - 2);
  });
  it('refuses a chunk size that is not a power of two', () => {
    expect(() => chunkSizes(20_000)).toThrow(/power of two/);
  });
});

function fileEntry(name: string, headerOffset: number, size: number, content: string): IndexEntry {
  return { name, type: 'file', mode: 0o644, size, headerOffset, dataOffset: headerOffset + 512, sha256: h(content) };
}

/** Two files of 1000 and 600 bytes, each its own member, then the end marker in a third. */
function sampleIndex(contentA = 'a', contentB = 'b'): ChunkIndex {
  const a = fileEntry('d/a.bin', 0, 1000, contentA);
  const b = fileEntry('d/b.bin', 1536, 600, contentB);
  return {
    archiveSize: 300, archiveSha256: h('archive'), tarSize: 4096, avgChunk: 16384,
    members: [
      { gzOffset: 0, gzLength: 100, tarOffset: 0, tarLength: 1536, sha256: h(`m0${contentA}`) },
      { gzOffset: 100, gzLength: 100, tarOffset: 1536, tarLength: 1536, sha256: h(`m1${contentB}`) },
      { gzOffset: 200, gzLength: 100, tarOffset: 3072, tarLength: 1024, sha256: h('end') },
    ],
    entries: [a, b],
  };
}

describe('index format', () => {
  it('round-trips', () => {
    const ix = sampleIndex();
    expect(decodeIndex(encodeIndex(ix))).toEqual(ix);
  });
  it('refuses a truncated index, a wrong magic, a format 1 index, and members that do not tile the archive', () => {
    const raw = encodeIndex(sampleIndex());
    expect(() => decodeIndex(raw.subarray(0, raw.length - 10))).toThrow(/ends early|leaves end at|Cannot use the chunk index/);
    expect(() => decodeIndex(Buffer.concat([Buffer.from('NOTANIDX'), raw.subarray(8)]))).toThrow(/does not start with LNDRIDX2/);
    expect(() => decodeIndex(gzipSync(Buffer.from('LNDRIDX1')))).toThrow(/format 1 index .*repack/);
    expect(() => decodeIndex(encodeIndex({ ...sampleIndex(), archiveSize: 301 }))).toThrow(/cover/);
    expect(() => decodeIndex(Buffer.from('not an index'))).toThrow(/LNDRIDX2/);
  });
  it('refuses entries that leave no end-of-archive marker', () => {
    const ix = sampleIndex();
    ix.members[2]!.tarLength = 512;
    ix.tarSize -= 512;
    expect(() => decodeIndex(encodeIndex(ix))).toThrow(/end-of-archive/);
  });
});

describe('tree plan', () => {
  const entry = (name: string, type: IndexEntry['type'], extra: Partial<IndexEntry> = {}): IndexEntry => ({ name, type, mode: 0o644, size: 0, headerOffset: 0, dataOffset: 512, ...(type === 'file' ? { sha256: h('') } : {}), ...extra });
  it('refuses a ".." name, a write through a symlink, a case collision and an escaping link', () => {
    expect(() => planTree([entry('../x', 'file')], LIMITS, 'c')).toThrow(/"\.\." part/);
    expect(() => planTree([entry('l', 'symlink', { linkname: 'd' }), entry('l/x', 'file')], LIMITS, 'c')).toThrow(/through the symlink "l"/);
    expect(() => planTree([entry('A', 'file'), entry('a', 'file')], LIMITS, 'c')).toThrow(/collides/);
    expect(() => planTree([entry('up', 'symlink', { linkname: '../..' })], LIMITS, 'c')).toThrow(/leaves/);
    expect(() => planTree([entry('h', 'link', { linkname: 'nothing' })], LIMITS, 'c')).toThrow(/hard link/);
  });
  it('creates parents first and clamps modes', () => {
    const t = planTree([entry('a/b/run', 'file', { mode: 0o4777 })], LIMITS, 'c');
    expect(t.ops.map((o) => o.kind)).toEqual(['dir', 'dir', 'file']);
    expect(t.files.find((f) => f.path === 'a/b/run')!.mode).toBe(0o755);
  });
});

describe('reuse plan', () => {
  const tree = (ix: ChunkIndex) => planTree(ix.entries, LIMITS, 'c');
  it('fetches everything with no installed entry, in one coalesced run', () => {
    const ix = sampleIndex();
    const p = computeReusePlan(ix, tree(ix), []);
    expect(p.fetch).toEqual([0, 1]);
    expect(p.runs).toEqual([{ start: 0, end: 200, members: [0, 1] }]);
    expect(p.pieces.get(1)).toEqual([{ path: 'd/b.bin', at: 512, offset: 0, length: 600 }]);
  });
  it('hard-links a file whose content an installed entry has, and fetches only the changed one', () => {
    const old = sampleIndex();
    const next = sampleIndex('a', 'B');
    const p = computeReusePlan(next, tree(next), [{ dir: '/store/c/1', files: tree(old).files }]);
    expect(p.links).toEqual([{ path: 'd/a.bin', from: { dir: '/store/c/1', path: 'd/a.bin' }, size: 1000 }]);
    expect(p.fetch).toEqual([1]);
    expect(p.runs).toEqual([{ start: 100, end: 200, members: [1] }]);
    expect(p.reusedBytes).toBe(1000);
  });
  it('copies a member found in an installed index from the files that hold it', () => {
    const old = sampleIndex();
    // A renamed file with the same bytes: no whole-file match by mode, but the same member.
    const next = sampleIndex();
    next.entries[0] = { ...next.entries[0]!, mode: 0o755 };
    const p = computeReusePlan(next, tree(next), [{ dir: '/s', files: tree(old).files, index: old }]);
    expect(p.copies).toEqual([{ member: 0, from: { dir: '/s', path: 'd/a.bin', offset: 0 }, to: { path: 'd/a.bin', offset: 0 }, length: 1000 }]);
    expect(p.fetch).toEqual([]);
  });
  it('keeps runs apart across a data member it does not fetch, unless maxGap allows it; metadata members between ride along', () => {
    // Three 600-byte files in members 0, 1, 2 (header blocks inside them), the end marker in member 3; file 1 is installed already.
    const f = (i: number, c: string) => fileEntry(`d/${i}.bin`, i * 1536, 600, c);
    const ix: ChunkIndex = {
      archiveSize: 400, archiveSha256: h('archive'), tarSize: 3 * 1536 + 1024, avgChunk: 16384,
      members: [0, 1, 2].map((i) => ({ gzOffset: i * 100, gzLength: 100, tarOffset: i * 1536, tarLength: 1536, sha256: h(`m${i}`) })).concat([{ gzOffset: 300, gzLength: 100, tarOffset: 4608, tarLength: 1024, sha256: '' }]),
      entries: [f(0, 'x'), f(1, 'y'), f(2, 'z')],
    };
    const installed = [{ dir: '/s', files: tree(ix).files.filter((x) => x.path === 'd/1.bin') }];
    expect(computeReusePlan(ix, tree(ix), installed).runs.map((r) => r.members)).toEqual([[0], [2]]);
    expect(computeReusePlan(ix, tree(ix), installed, { maxGap: 100 }).runs.map((r) => r.members)).toEqual([[0, 2]]);
    // Member 1 as a metadata member (no hash, no file data): bridged, one run.
    // (The planner reads only offsets: file 1 is gone and file 2's header group is stretched over member 1.)
    const meta: ChunkIndex = { ...ix, members: ix.members.map((m, i) => (i === 1 ? { ...m, sha256: '' } : m)), entries: [f(0, 'x'), { ...f(2, 'z'), headerOffset: 1536 }] };
    expect(computeReusePlan(meta, tree(meta), []).runs.map((r) => r.members)).toEqual([[0, 2]]);
  });
});

describe('reporting', () => {
  it('says how much was reused and fetched, in progress lines, /status job text and metrics', async () => {
    const { deltaText, formatProgress } = await import('../../src/cli/commands/status-format.ts');
    const { LanderMetrics } = await import('../../src/report/metrics.ts');
    const MiB = 1 << 20;
    expect(deltaText(95.2 * MiB, 0.2 * MiB)).toBe('reused 95.2 MiB locally, fetched 0.2 MiB');
    expect(formatProgress({ type: 'progress', component: 'server', version: '2', bytes: 0.2 * MiB, total: 0.4 * MiB, downloadedBytes: 0.2 * MiB, rate: 0, extractedBytes: 0, reusedBytes: 95.2 * MiB })).toContain('(reused 95.2 MiB locally, fetched 0.2 MiB)');
    const m = new LanderMetrics();
    m.bytesReused('server', 1234);
    m.bytesDownloaded('server', 56);
    const text = await Promise.resolve(m.registry.render());
    expect(text).toContain('lander_reused_bytes_total{component="server"} 1234');
    expect(text).toContain('lander_download_bytes_total{component="server"} 56');
  });
});

describe('chunked gzip layout', () => {
  /** Runs `tar` through a ChunkedGzip and returns its members and entries. */
  async function layout(tar: Buffer) {
    const cg = new ChunkedGzip({ sizes: chunkSizes(4096), smallSizes: chunkSizes(1024), smallFile: 64 * 1024, hugeSizes: chunkSizes(16384), hugeFile: 1 << 20, level: 1 });
    const out: Buffer[] = [];
    cg.on('data', (b: Buffer) => out.push(b));
    await new Promise<void>((resolve, reject) => { cg.on('end', resolve); cg.on('error', reject); cg.end(tar); });
    return { gz: Buffer.concat(out), members: cg.members, entries: cg.entries };
  }

  it('keeps file data and metadata in separate members, and sizes chunks by the file', async () => {
    const tar = await buildTar([
      { type: 'directory', name: 'd/' },
      { name: 'd/small.py', content: randomBytes(48 * 1024) },
      { name: 'd/empty', content: '' },
      { name: 'd/mid.so', content: randomBytes(512 * 1024 + 7) },
      { name: 'd/huge.so', content: randomBytes(3 << 20) },
    ]);
    const { gz, members, entries } = await layout(tar);
    expect(gunzipSync(gz).equals(tar)).toBe(true);
    const files = entries.filter((e) => e.size > 0);
    const dataOf = (m: { tarOffset: number; tarLength: number }) => files.filter((e) => e.dataOffset < m.tarOffset + m.tarLength && e.dataOffset + e.size > m.tarOffset);
    const mean: Record<string, number[]> = {};
    for (const m of members) {
      const holders = dataOf(m);
      if (m.sha256 === '') {
        expect(holders).toEqual([]);
        continue;
      }
      // A data member lies inside one file's data, padding excluded.
      expect(holders.length).toBe(1);
      const e = holders[0]!;
      expect(m.tarOffset).toBeGreaterThanOrEqual(e.dataOffset);
      expect(m.tarOffset + m.tarLength).toBeLessThanOrEqual(e.dataOffset + e.size);
      expect(createHash('sha256').update(tar.subarray(m.tarOffset, m.tarOffset + m.tarLength)).digest('hex')).toBe(m.sha256);
      (mean[e.name] ??= []).push(m.tarLength);
    }
    const avg = (n: string) => mean[n]!.reduce((a, b) => a + b, 0) / mean[n]!.length;
    expect(Math.max(...mean['d/small.py']!)).toBeLessThanOrEqual(4096);
    expect(Math.max(...mean['d/mid.so']!)).toBeLessThanOrEqual(16384);
    expect(avg('d/small.py')).toBeLessThan(avg('d/mid.so'));
    expect(avg('d/mid.so')).toBeLessThan(avg('d/huge.so'));
    // The index written from it decodes to the same layout.
    const ix = { archiveSize: gz.length, archiveSha256: h('x'), tarSize: tar.length, avgChunk: 4096, members, entries };
    expect(decodeIndex(encodeIndex(ix))).toEqual(ix);
  });
});
