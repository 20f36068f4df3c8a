/**
 * Segmented downloads through the real install worker against the real
 * misbehaving test server: many Range requests over keep-alive connections
 * into the `.part`, consumed in order by the one pass. Each row makes the
 * server misbehave on one segment request (a cut, an ETag that changes, a
 * Range ignored, 429 with Retry-After) and checks the installed tree is
 * exact, byte for byte.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runInstallWorker } from '../../src/install/worker-client.ts';
import type { InstallRequest, LogEvent, ProgressEvent } from '../../workers/protocol.ts';
import { readPartMeta } from '../../src/install/part-file.ts';
import { DigestMismatchError } from '../../src/base/errors.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { GUNZIP_MODES, workerRequest } from '../helpers/install-request.ts';

const SEGMENT = 128 * 1024;
let srv: TestServer;
let root: string;
let n = 0;
const blob = randomBytes(1_500_000); // incompressible: the archive is ~1.5 MB, about 12 segments
const lib = randomBytes(300_000);
let gz: Buffer;

/** The request fields of the gunzip mode under test; each mode has its own server. */
let modeOver: Partial<InstallRequest> = {};
beforeAll(async () => {
  gz = await buildTarGz([{ name: 'lib/blob.so', content: blob, mode: 0o755 }, { name: 'lib/other.so', content: lib }, { name: 'VERSION', content: '1\n' }], 1);
});
afterEach(async () => { if (root) await rm(root, { recursive: true, force: true }); });

async function request(p: string, over: Partial<InstallRequest> = {}): Promise<InstallRequest> {
  root = await mkdtemp(path.join(tmpdir(), 'lander-seg-'));
  await mkdir(path.join(root, 'downloads'));
  srv.serve(p, gz);
  return workerRequest({
    root, url: srv.url(p), sha256: sha256Hex(gz), jobId: `seg${++n}`,
    // Loopback is fast: tell lander every link is slow, so the first stream always hands over to segments.
    download: { retries: 3, connections: 4, segmentThresholdBytes: 0, segmentBytes: SEGMENT, segmentBelowBytesPerSec: Infinity },
  }, { ...modeOver, ...over });
}

async function expectExactTree(req: InstallRequest): Promise<void> {
  expect((await readFile(path.join(req.stagingDir, 'lib/blob.so'))).equals(blob)).toBe(true);
  expect((await readFile(path.join(req.stagingDir, 'lib/other.so'))).equals(lib)).toBe(true);
  expect(await readFile(path.join(req.stagingDir, 'VERSION'), 'utf8')).toBe('1\n');
  expect((await stat(path.join(req.stagingDir, 'lib/blob.so'))).mode & 0o777).toBe(0o755);
}

function collect() {
  const logs: LogEvent[] = [];
  const progress: ProgressEvent[] = [];
  return { logs, progress, opts: { onLog: (e: LogEvent) => logs.push(e), onProgress: (e: ProgressEvent) => progress.push(e) } };
}

const closedRanges = (p: string) => srv.stats(p).ranges.filter((r) => r !== undefined && /^bytes=\d+-\d+$/.test(r));

describe.each(GUNZIP_MODES)('segmented download, gunzip on the %s thread', (_where, over) => {
  beforeAll(async () => { srv = await startTestServer(); modeOver = over; });
  afterAll(async () => { await srv.close(); modeOver = {}; });
  it('fetches consecutive segments over several connections, each byte once, and extracts them in order', async () => {
    const p = '/seg/plain.tar.gz';
    const req = await request(p);
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    const seg = c.logs.find((l) => l.event === 'download.segmented');
    expect(seg?.fields).toMatchObject({ connections: 4, segmentBytes: SEGMENT });
    // One stream measures the link, then a probe from where it stopped serves the first segment; the rest ask for closed ranges.
    expect(srv.stats(p).ranges.slice(0, 2)).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    expect(closedRanges(p).length).toBe((seg!.fields.segments as number) - 1);
    expect(closedRanges(p).length).toBeGreaterThanOrEqual(8);
    // Each byte fetched once, but for what the sockets held when the measuring stream and the probe were cut.
    expect(done.downloadedBytes).toBeLessThanOrEqual(gz.length + SEGMENT);
    expect(c.progress.some((e) => e.connections > 1)).toBe(true);
    expect((await readPartMeta(req.partPath))?.done).toEqual([{ start: 0, end: gz.length }]);
  });

  it('a link as fast as wanted keeps its one stream: no segments, one request', async () => {
    const p = '/seg/fast.tar.gz';
    const req = await request(p, {});
    req.download.segmentBelowBytesPerSec = 0;
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    expect(c.logs.some((l) => l.event === 'download.segmented')).toBe(false);
    expect(srv.stats(p).ranges).toEqual([undefined]);
    expect(c.progress.every((e) => e.connections <= 1)).toBe(true);
  });

  it('the link probe rates what follows the first burst: 600 KB at once, then 1 MB/s, is a slow link that goes to segments', async () => {
    const p = '/seg/burst.tar.gz';
    const req = await request(p);
    // The probe on the clock, as by default (no set segment size); slow is under 10 MB/s.
    delete req.download.segmentBytes;
    req.download.segmentBelowBytesPerSec = 10e6;
    // A burst that fits the socket buffers whole, as a capped server's does (a larger one spilled past
    // the probe's first half under load).
    srv.misbehave(p, { burst: 600_000, rate: 1_000_000 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    // Rated over the whole probe, the burst alone reads as 15-30 MB/s: a fast link, one stream kept.
    const seg = c.logs.find((l) => l.event === 'download.segmented');
    expect(seg, 'the probe took the burst for the link rate').toBeDefined();
    expect(seg!.fields.linkRate as number).toBeLessThan(10e6);
    expect(srv.stats(p).ranges.some((r) => r !== undefined)).toBe(true);
  });

  it('a link judged fast on a burst is rated again: 1.2 MB at once, then 200 KB/s, goes on in segments from where it was', async () => {
    const p = '/seg/late-burst.tar.gz';
    const req = await request(p);
    // The probe decides on its first 128 KiB (a set segment size), all inside the burst: a fast link.
    req.download.segmentBelowBytesPerSec = 10e6;
    srv.misbehave(p, { burst: 1_200_000, rate: 200_000 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    const again = c.logs.find((l) => l.event === 'download.recheck');
    expect(again, 'the stream stayed single after its burst').toBeDefined();
    expect(again!.fields.probedRate as number).toBeGreaterThanOrEqual(10e6);
    expect(again!.fields.linkRate as number).toBeLessThan(10e6);
    const seg = c.logs.find((l) => l.event === 'download.segmented');
    expect(seg, 'no segments after the recheck').toBeDefined();
    // Segments start where the single stream stopped, past the burst: nothing before it is fetched again.
    expect(seg!.fields.offset as number).toBeGreaterThanOrEqual(1_000_000);
    expect(srv.stats(p).ranges[0]).toBeUndefined();
    expect(srv.stats(p).ranges.slice(1).every((r) => r !== undefined)).toBe(true);
  });

  it('a link judged fast that stays fast is not switched by the recheck: one stream to the end', async () => {
    const p = '/seg/steady.tar.gz';
    const req = await request(p);
    // ~0.45 s at 4 MB/s, past the recheck at 0.3 s; 1 MB/s is the line between slow and fast.
    req.download.segmentBelowBytesPerSec = 1e6;
    srv.misbehave(p, { rate: 4_000_000 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    expect(c.logs.find((l) => l.event === 'download.recheck'), 'the recheck rated a 4 MB/s stream below 1 MB/s').toBeUndefined();
    expect(c.logs.find((l) => l.event === 'download.segmented')).toBeUndefined();
    expect(srv.stats(p).requests).toBe(1);
  });

  it('a segment cut mid-body is fetched again from its last byte; the tree is exact', async () => {
    const p = '/seg/cut.tar.gz';
    const req = await request(p);
    srv.misbehave(p, { cutAfter: 40_000, after: 3 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    const retry = c.logs.find((l) => l.event === 'download.segment-retry');
    expect(retry?.fields.reason).toMatch(/broke|short/);
    // Resumed from the bytes it had: one request starts inside a segment.
    expect(closedRanges(p).some((r) => Number(/=(\d+)-/.exec(r!)![1]) % SEGMENT !== 0)).toBe(true);
  });

  it('an ETag that changes between segments: back to one stream, from zero, never mixing versions', async () => {
    const p = '/seg/etag.tar.gz';
    const req = await request(p);
    srv.misbehave(p, { etag: '"changed"', after: 3, times: 1000 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    expect(c.logs.find((l) => l.event === 'download.single-stream')?.fields.reason).toMatch(/whole resource|ETag/);
    expect(c.logs.some((l) => l.event === 'download.restart')).toBe(true);
  });

  it('a server that ignores Range on the second request: restarted from zero, the tree exact', async () => {
    const p = '/seg/ignore2.tar.gz';
    const req = await request(p);
    srv.misbehave(p, { ignoreRange: true, after: 1 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    expect(c.logs.find((l) => l.event === 'download.restart')?.fields.reason).toMatch(/ignored the range/);
  });

  it('a server that ignores Range on a segment request: one stream from the bytes fed so far', async () => {
    const p = '/seg/ignore.tar.gz';
    const req = await request(p);
    srv.misbehave(p, { ignoreRange: true, after: 3 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    expect(c.logs.find((l) => l.event === 'download.single-stream')).toBeDefined();
    // The rest came as one open-ended range.
    expect(srv.stats(p).ranges.at(-1)).toMatch(/^bytes=\d+-$/);
  });

  it('429 with Retry-After on a segment: fewer connections, the segment retried after the wait', async () => {
    const p = '/seg/429.tar.gz';
    const req = await request(p);
    srv.misbehave(p, { status: 429, retryAfter: '0', after: 3, times: 2 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    const retries = c.logs.filter((l) => l.event === 'download.segment-retry');
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.at(-1)!.fields.connections).toBeLessThan(4);
  });

  it('an interrupted segmented download resumes with only the missing segments', async () => {
    const p = '/seg/resume.tar.gz';
    const req = await request(p);
    srv.serve(p, gz, { rate: 2_000_000 }); // slow enough to abort midway
    const ac = new AbortController();
    const first = runInstallWorker(req, { signal: ac.signal, onProgress: (e) => { if (e.downloadedBytes > gz.length / 2) ac.abort(); } });
    await expect(first).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const meta = await readPartMeta(req.partPath);
    expect(meta?.done?.length).toBeGreaterThan(0);
    srv.serve(p, gz);
    const c = collect();
    const done = await runInstallWorker({ ...req, jobId: `seg${++n}` , stagingDir: `${req.stagingDir}-2` }, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(done.reusedBytes).toBeGreaterThan(0);
    await expectExactTree({ ...req, stagingDir: `${req.stagingDir}-2` });
    // Bytes fetched twice: at most what the open segments held when the first run was stopped.
    // Received again at most: what the measuring stream's and the probe's sockets held when they were cut
    // (a whole download again would be ~gz.length more).
    expect(done.downloadedBytes + done.reusedBytes).toBeLessThanOrEqual(gz.length + 3 * SEGMENT);
    expect(done.downloadedBytes).toBeLessThan(gz.length);
  });

  it('past 16 MiB the hash worker takes the digest over from byte 0: the right one installs, a wrong one is refused', async () => {
    const big = randomBytes(17 << 20);
    const bigGz = await buildTarGz([{ name: 'lib/big.so', content: big }], 1);
    const p = '/seg/big.tar.gz';
    const req = await request(p);
    srv.serve(p, bigGz);
    req.sha256 = sha256Hex(bigGz);
    req.partPath = path.join(root, 'downloads', `${req.sha256}.part`);
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    expect(done.inflatedIn).toBe('hash-worker'); // past 16 MiB, gunzip runs there too, by default
    expect((await readFile(path.join(req.stagingDir, 'lib/big.so'))).equals(big)).toBe(true);
    const wrong = await runInstallWorker({ ...req, jobId: `seg${++n}`, stagingDir: `${req.stagingDir}-w`, sha256: 'f'.repeat(64), partPath: path.join(root, 'downloads', 'w.part') }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(DigestMismatchError);
    expect((wrong as DigestMismatchError).data.actual).toBe(req.sha256);
  });
});
