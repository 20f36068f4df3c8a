/**
 * The chunked install's execution: a real chunked archive (lander's packer)
 * installed from a file: range source by the real worker pool. An
 * interrupted run leaves its tree and journal; the next run copies the
 * verified members from that tree instead of fetching them, hashes the
 * files they land in, and fetches again what a damaged old tree got wrong.
 * Also the pure rule of which files are hashed at the end.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChunkedInstall, type ChunkedInstallRequest } from '../../src/install/chunked/chunked-install.ts';
import { filesToHash } from '../../src/install/chunked/file-checks.ts';
import { decodeIndex } from '../../src/install/chunked/index-format.ts';
import { httpRangeSource, type RangeSource } from '../../src/install/chunked/range-source.ts';
import { computeReusePlan, withMetadataBetween } from '../../src/install/chunked/reuse-plan.ts';
import { fromRanges, MemberSet, toRanges } from '../../src/install/chunked/resume-tree.ts';
import { planTree } from '../../src/install/chunked/tree-plan.ts';
import { writeTarGz } from '../../src/pack/pack-dir.ts';
import { walkSource } from '../../src/pack/walk.ts';
import { libBytes } from '../helpers/source-tree.ts';

const LIMITS = { maxEntries: 10_000, maxExpansionRatio: 200, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 64, maxExtractedBytes: 1 << 30 };
const FILES = 6;
const SIZE = 700_000;

let dir: string;
let archive: string;
let sha256: string;
let indexSha256: string;
let indexFile: Buffer;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'lander-chunked-resume-'));
  const src = path.join(dir, 'src');
  await mkdir(path.join(src, 'lib'), { recursive: true });
  for (let i = 0; i < FILES; i++) await writeFile(path.join(src, 'lib', `lib${i}.so`), libBytes(SIZE, 60 + i));
  archive = path.join(dir, 'a.tar.gz');
  const r = await writeTarGz(src, await walkSource(src), archive, { chunked: { indexFile: `${archive}.index`, avgChunk: 16 * 1024 } });
  sha256 = r.sha256;
  indexSha256 = r.index!.sha256;
  indexFile = await readFile(`${archive}.index`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file: range source in 64 KiB pieces that counts what it served; `stopAfter` aborts the run once that many bytes went out and a journal exists. */
function countingSource(o: { stopAfter?: number; ac?: AbortController; journal?: string } = {}): RangeSource & { served: number } {
  const inner = httpRangeSource();
  const s = {
    served: 0,
    whole: (url: string, max: number, signal: AbortSignal) => (url.endsWith('.index') ? Promise.resolve(indexFile) : inner.whole(url, max, signal)),
    async range(url: string, start: number, end: number, signal: AbortSignal) {
      const body = await inner.range(url, start, end, signal);
      return (async function* () {
        for await (const chunk of body) {
          for (let off = 0; off < chunk.length; off += 65536) {
            if (o.stopAfter !== undefined && s.served >= o.stopAfter) {
              // Wait (bounded) until a batch is journaled, so the interruption leaves something to resume.
              for (let i = 0; i < 400 && !(await stat(o.journal!).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 10));
              o.ac!.abort();
              throw new Error('interrupted');
            }
            const piece = chunk.subarray(off, off + 65536);
            s.served += piece.length;
            yield piece;
          }
        }
      })();
    },
  };
  return s;
}

function request(name: string, part: string): ChunkedInstallRequest {
  return {
    component: 'libs', version: '1', urls: [pathToFileURL(archive).href], sha256, index: { url: `${pathToFileURL(archive).href}.index`, sha256: indexSha256 },
    stagingDir: path.join(dir, name), partPath: part, limits: LIMITS, sources: [], retries: 0, backoffInitialMs: 10, backoffMaxMs: 10, workers: 2, connections: 2,
  };
}

async function expectExactTree(staging: string): Promise<void> {
  const names = (await readdir(path.join(staging, 'lib'))).sort();
  expect(names).toEqual(Array.from({ length: FILES }, (_, i) => `lib${i}.so`));
  for (let i = 0; i < FILES; i++) expect(sha(await readFile(path.join(staging, 'lib', `lib${i}.so`)))).toBe(sha(libBytes(SIZE, 60 + i)));
}

describe('chunked install: resume from the interrupted tree', () => {
  const interrupt = async (part: string) => {
    const ac = new AbortController();
    const source = countingSource({ stopAfter: 1_500_000, ac, journal: `${part}.json` });
    await expect(runChunkedInstall(request('s1', part), { signal: ac.signal, source })).rejects.toThrow();
    const journal = JSON.parse(await readFile(`${part}.json`, 'utf8')) as { ranges: [number, number][]; in: string };
    const members = fromRanges(journal.ranges);
    expect(members.length).toBeGreaterThan(0);
    expect(journal.in).toBe('tree');
    expect((await stat(`${part}.tree`)).isDirectory()).toBe(true);
    await expect(stat(path.join(dir, 's1'))).rejects.toThrow(); // the staging folder is never left half-built
    return members;
  };

  it('copies the verified members from the old tree, fetches only the rest, and ends exact', async () => {
    const part = path.join(dir, 'p1');
    const verified = await interrupt(part);
    const index = decodeIndex(indexFile);
    const keptBytes = verified.reduce((n, m) => n + index.members[m]!.gzLength, 0);
    const events: { event: string; fields: Record<string, unknown> }[] = [];
    const source = countingSource();
    const done = await runChunkedInstall(request('s2', part), { signal: new AbortController().signal, source, log: (_l, event, fields) => events.push({ event, fields }) });
    expect(events.find((e) => e.event === 'install.chunked-resume')?.fields.bytes).toBe(keptBytes);
    expect(events.some((e) => e.event === 'install.chunked-resume-failed')).toBe(false);
    const plan = computeReusePlan(index, planTree(index.entries, LIMITS, 'libs'), []);
    // Every member the plan fetches but the kept ones, with the metadata members that lie only between two of those.
    const kept = new Set(verified);
    const rest = withMetadataBetween(index.members, plan.fetch.filter((m) => !kept.has(m)));
    expect(source.served).toBe(rest.reduce((n, m) => n + index.members[m]!.gzLength, 0));
    expect(done.files.filter((f) => f.type === 'file')).toHaveLength(FILES);
    await expectExactTree(path.join(dir, 's2'));
    await expect(stat(`${part}.tree`)).rejects.toThrow(); // renamed to the staging folder
    await expect(stat(`${part}.prev`)).rejects.toThrow();
  });

  it('a byte changed in the old tree is caught by the file hash and its members are fetched again', async () => {
    const part = path.join(dir, 'p2');
    const verified = await interrupt(part);
    // Damage a resumed byte: the first byte of data the first verified member carries.
    const index = decodeIndex(indexFile);
    const tree = planTree(index.entries, LIMITS, 'libs');
    const plan = computeReusePlan(index, tree, []);
    const piece = plan.pieces.get(verified[0]!)![0]!;
    const fh = await open(path.join(`${part}.tree`, piece.path), 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, piece.offset);
    b[0]! ^= 0x01;
    await fh.write(b, 0, 1, piece.offset);
    await fh.close();
    const events: { event: string; fields: Record<string, unknown> }[] = [];
    await runChunkedInstall(request('s3', part), { signal: new AbortController().signal, source: countingSource(), log: (_l, event, fields) => events.push({ event, fields }) });
    expect(events.some((e) => e.event === 'install.chunked-resume')).toBe(true);
    expect(events.find((e) => e.event === 'install.chunked-resume-failed')?.fields.files).toBe(1);
    await expectExactTree(path.join(dir, 's3'));
  });
});

describe('the resume journal', () => {
  it('lists members as ranges and reads them back; malformed ranges are dropped', () => {
    expect(toRanges([5, 1, 2, 3, 9, 10, 3])).toEqual([[1, 4], [5, 6], [9, 11]]);
    expect(fromRanges([[1, 4], [9, 11], ['x', 2], [3], [-1, 2]])).toEqual([1, 2, 3, 9, 10]);
    const set = new MemberSet(12);
    for (const m of [5, 1, 2, 3, 9, 10, 11, 3]) set.add(m);
    expect(set.ranges()).toEqual([[1, 4], [5, 6], [9, 12]]);
  });
});

describe('which files are hashed at the end', () => {
  it('proves a file tiled by fetched members; hashes one with a copied or resumed piece, or one the pieces do not tile', () => {
    const index = decodeIndex(indexFile);
    const tree = planTree(index.entries, LIMITS, 'libs');
    const plan = computeReusePlan(index, tree, []);
    expect(filesToHash(tree, plan, new Set())).toEqual({ hash: [], proven: FILES });
    expect(filesToHash(tree, plan, new Set(['lib/lib2.so'])).hash.map((op) => op.path)).toEqual(['lib/lib2.so']);
    const copied = { ...plan, copies: [{ member: 0, from: { dir: '/x', path: 'lib/lib0.so', offset: 0 }, to: { path: 'lib/lib3.so', offset: 0 }, length: 10 }] };
    expect(filesToHash(tree, copied, new Set()).hash.map((op) => op.path)).toEqual(['lib/lib3.so']);
    // A member's pieces dropped: lib1.so has a hole, so it is hashed (and would fail).
    const holder = [...plan.pieces].find(([, ps]) => ps.some((p) => p.path === 'lib/lib1.so' && p.offset > 0))![0];
    const holed = { ...plan, pieces: new Map([...plan.pieces].filter(([m]) => m !== holder)) };
    expect(filesToHash(tree, holed, new Set()).hash.map((op) => op.path)).toContain('lib/lib1.so');
  });
});
