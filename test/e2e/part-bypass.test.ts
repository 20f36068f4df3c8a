/**
 * On a link faster than the install, the archive bytes go from the socket
 * to the hash worker through a shared ring instead of the `.part`
 * (`src/install/part-ring.ts`): once the probe and its recheck found the
 * stream fast, the `.part` stops growing and keeps its prefix. The real
 * install worker and hash worker against the real test server, sending at a
 * steady rate so the recheck falls mid-download, with every link counted as
 * fast (`segmentBelowBytesPerSec: 0`): the tree is exact, the `.part` holds
 * exactly the prefix `partBytes` reports, a cut after the switch resumes by
 * Range from the bytes the pass has, and a later run resumes from the
 * `.part`'s prefix.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runInstallWorker } from '../../src/install/worker-client.ts';
import type { InstallRequest } from '../../workers/protocol.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { workerRequest } from '../helpers/install-request.ts';

const RATE = 8_000_000; // ~1.6 s for the archive: the recheck (~0.3 s in) falls well before the end
let srv: TestServer;
let root: string;
let n = 0;
const big = randomBytes(9_000_000); // incompressible: ring and .part carry ~12.6 MB
const small = randomBytes(3_500_000);
let gz: Buffer;

beforeAll(async () => {
  gz = await buildTarGz([{ name: 'lib/libcublas.so', content: big, mode: 0o755 }, { name: 'lib/libcudart.so', content: small }, { name: 'VERSION', content: '12.4\n' }], 1);
  srv = await startTestServer();
});
afterAll(async () => { await srv.close(); });
afterEach(async () => { if (root) await rm(root, { recursive: true, force: true }); });

async function request(p: string, over: Partial<InstallRequest['download']> = {}, fresh = true): Promise<InstallRequest> {
  if (fresh) {
    root = await mkdtemp(path.join(tmpdir(), 'lander-bypass-'));
    await mkdir(path.join(root, 'downloads'));
  }
  return workerRequest({
    root, url: srv.url(p), sha256: sha256Hex(gz), jobId: `bypass${++n}`,
    // Any link is fast (the probe keeps one stream), and a small archive is large enough to probe and to inflate off-thread.
    download: { retries: 3, segmentThresholdBytes: 0, segmentBelowBytesPerSec: 0, ...over },
  }, { offThreadBytes: 0 });
}

async function expectExactTree(req: InstallRequest): Promise<void> {
  expect((await readFile(path.join(req.stagingDir, 'lib/libcublas.so'))).equals(big)).toBe(true);
  expect((await readFile(path.join(req.stagingDir, 'lib/libcudart.so'))).equals(small)).toBe(true);
  expect(await readFile(path.join(req.stagingDir, 'VERSION'), 'utf8')).toBe('12.4\n');
  expect((await stat(path.join(req.stagingDir, 'lib/libcublas.so'))).mode & 0o777).toBe(0o755);
}

/** The `.part` holds exactly the archive's first `n` bytes. */
async function expectPartPrefix(req: InstallRequest, bytes: number): Promise<void> {
  const part = await readFile(req.partPath);
  expect(part.length, 'the .part is not the prefix partBytes says').toBe(bytes);
  expect(part.equals(gz.subarray(0, bytes)), 'the .part is not the archive\'s prefix').toBe(true);
}

describe('a fast link bypasses the .part', () => {
  it('writes only the bytes before the recheck to the .part; the rest go through the ring, and the tree is exact', async () => {
    const p = '/bypass/plain.tar.gz';
    srv.serve(p, gz, { rate: RATE });
    const req = await request(p);
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    expect(done.inflatedIn).toBe('hash-worker');
    expect(done.partBytes).toBeGreaterThan(0);
    expect(done.partBytes, 'every byte went to the .part: the ring was never used').toBeLessThan(gz.length * 0.75);
    await expectPartPrefix(req, done.partBytes);
    await expectExactTree(req);
    expect(srv.stats(p).requests).toBe(1);
  });

  it('writes every byte to the .part with keepPart', async () => {
    const p = '/bypass/keep.tar.gz';
    srv.serve(p, gz, { rate: RATE });
    const req = await request(p, { keepPart: true });
    const done = await runInstallWorker(req);
    expect(done.partBytes).toBe(gz.length);
    await expectPartPrefix(req, gz.length);
    await expectExactTree(req);
  });

  it('resumes a stream cut after the switch by Range from the bytes the pass has, not from the .part\'s end', async () => {
    const p = '/bypass/cut.tar.gz';
    srv.serve(p, gz, { rate: RATE });
    const cutAt = Math.floor(gz.length * 0.8);
    srv.misbehave(p, { cutAfter: cutAt });
    const req = await request(p);
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    await expectExactTree(req);
    expect(done.partBytes).toBeLessThan(cutAt);
    await expectPartPrefix(req, done.partBytes); // no hole, nothing past the prefix
    const ranges = srv.stats(p).ranges;
    expect(ranges[0]).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    expect(resumedAt, `the resume asked for ${ranges[1]}`).toBeGreaterThan(done.partBytes);
    expect(resumedAt).toBeLessThanOrEqual(cutAt);
    expect(done.downloadedBytes).toBeLessThanOrEqual(gz.length);
  });

  it('a run stopped after the switch leaves the .part\'s prefix, and the next run resumes from it', async () => {
    const p = '/bypass/resume.tar.gz';
    srv.serve(p, gz, { rate: RATE });
    const req = await request(p);
    const ac = new AbortController();
    const first = runInstallWorker(req, { signal: ac.signal, onProgress: (e) => { if (e.downloadedBytes > gz.length * 0.7) ac.abort(); } });
    await expect(first).rejects.toThrow();
    const kept = (await stat(req.partPath)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept, 'the .part grew after the switch').toBeLessThan(gz.length * 0.7);
    await expectPartPrefix(req, kept);
    const again = await runInstallWorker({ ...(await request(p, {}, false)), partPath: req.partPath, stagingDir: `${req.stagingDir}-2` });
    expect(again.sha256).toBe(req.sha256);
    expect(again.reusedBytes).toBe(kept);
    expect(again.downloadedBytes).toBe(gz.length - kept);
    await expectExactTree({ ...req, stagingDir: `${req.stagingDir}-2` });
    expect(srv.stats(p).ranges.at(-1)).toBe(`bytes=${kept}-`);
  });
});
