/**
 * One batch job of the inflate worker (src/install/chunked/member-jobs.ts),
 * run in-process on a real chunked archive: neighbouring members inflate in
 * one call, each cut is checked against its own SHA-256 before a byte is
 * written, a bad member is named, and long runs split into segments at
 * member boundaries.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentRuns } from '../../src/install/chunked/fetch-run.ts';
import { decodeIndex, type ChunkIndex } from '../../src/install/chunked/index-format.ts';
import { runJob } from '../../src/install/chunked/member-jobs.ts';
import { writeTarGz } from '../../src/pack/pack-dir.ts';
import { walkSource } from '../../src/pack/walk.ts';
import type { MemberJob } from '../../workers/inflate-protocol.ts';
import { libBytes } from '../helpers/source-tree.ts';

const SIZE = 400_000;
let dir: string;
let gz: Buffer;
let index: ChunkIndex;
const body = libBytes(SIZE, 77);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'lander-chunked-batches-'));
  const src = path.join(dir, 'src');
  await mkdir(src);
  await writeFile(path.join(src, 'lib.so'), body);
  const archive = path.join(dir, 'a.tar.gz');
  await writeTarGz(src, await walkSource(src), archive, { chunked: { indexFile: `${archive}.index`, avgChunk: 16 * 1024 } });
  gz = await readFile(archive);
  index = decodeIndex(await readFile(`${archive}.index`));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The job for every member holding file data (the first holds the header too), writing into a fresh `out`. */
async function batch(bytes: Buffer = gz): Promise<{ job: MemberJob; out: string }> {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
  await (await open(out, 'w')).close();
  const e = index.entries.find((x) => x.type === 'file')!;
  const ms = index.members.map((m, i) => ({ m, i })).filter(({ m }) => m.tarOffset < e.dataOffset + e.size && m.tarOffset + m.tarLength > e.dataOffset);
  const from = ms[0]!.m.gzOffset;
  const members = ms.map(({ m, i }) => {
    const a = Math.max(m.tarOffset, e.dataOffset);
    const b = Math.min(m.tarOffset + m.tarLength, e.dataOffset + e.size);
    return { member: i, gzStart: m.gzOffset - from, gzLength: m.gzLength, tarLength: m.tarLength, sha256: m.sha256, pieces: [{ path: out, at: a - m.tarOffset, offset: a - e.dataOffset, length: b - a }], headers: [] };
  });
  const last = ms[ms.length - 1]!.m;
  return { job: { type: 'member', id: 1, gz: Buffer.from(bytes.subarray(from, last.gzOffset + last.gzLength)), members }, out };
}

describe('a batch of members', () => {
  it('inflates in one call, writes the file exactly', async () => {
    const { job, out } = await batch();
    expect(job.members.length).toBeGreaterThan(5);
    await runJob(job);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('a flipped byte in one member is refused, naming that member, and nothing is written', async () => {
    const k = 3;
    const { job: good } = await batch();
    const m = index.members[good.members[k]!.member]!;
    const bad = Buffer.from(gz);
    bad[m.gzOffset + Math.floor(m.gzLength / 2)]! ^= 0x20;
    const { job, out } = await batch(bad);
    const err = await runJob(job).then(() => undefined, (e: unknown) => e as { code?: string; data?: { member?: number } });
    expect(['ERR_DIGEST_MISMATCH', 'ERR_MEMBER_CORRUPT']).toContain(err?.code);
    expect(err?.data?.member).toBe(good.members[k]!.member);
    expect((await readFile(out)).length).toBe(0);
  });

  it('bytes that inflate to more than the batch\'s indexed length are refused', async () => {
    const { job } = await batch();
    // The last member replaced by a gzip member of 1 MiB of zeros: same framing, far more output.
    const lastSpec = job.members[job.members.length - 1]!;
    const bomb = gzipSync(Buffer.alloc(1 << 20));
    const gzBomb = Buffer.concat([job.gz.subarray(0, lastSpec.gzStart), bomb]);
    const err = await runJob({ ...job, gz: gzBomb, members: [...job.members.slice(0, -1), { ...lastSpec, gzLength: bomb.length }] }).then(() => undefined, (e: unknown) => e as { code?: string; data?: { member?: number } });
    expect(['ERR_DIGEST_MISMATCH', 'ERR_MEMBER_CORRUPT']).toContain(err?.code);
    expect(err?.data?.member).toBe(lastSpec.member);
  });
});

describe('segments', () => {
  it('split runs of neighbours at member boundaries, about segmentBytes each, and never join non-neighbours', () => {
    const ms = Array.from({ length: 10 }, (_, i) => ({ gzOffset: i * 100, gzLength: 100, tarOffset: i * 200, tarLength: 200, sha256: '' }));
    expect(segmentRuns(ms, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 300)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(segmentRuns(ms, [0, 1, 3, 4], 1000)).toEqual([[0, 1], [3, 4]]);
    expect(segmentRuns(ms, [], 1000)).toEqual([]);
  });
});
