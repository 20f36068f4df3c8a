/**
 * Network faults and mirrors against the misbehaving test server, through
 * the real install worker. Rows already covered in install-worker.test.ts
 * (reset mid-body, stall, Range ignored, wrong Content-Range, 503 with
 * Retry-After 0, an expiring signed redirect re-resolved from the original
 * URL, 404) are not repeated; this file adds the rest of issue 6's table.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runInstallWorker } from '../../src/install/worker-client.ts';
import type { InstallRequest, LogEvent } from '../../workers/protocol.ts';
import { DigestMismatchError, DownloadError } from '../../src/base/errors.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { workerRequest } from '../helpers/install-request.ts';

let srv: TestServer;
let root: string;
let n = 0;
beforeAll(async () => { srv = await startTestServer(); });
afterAll(async () => { await srv.close(); });
afterEach(async () => { if (root) await rm(root, { recursive: true, force: true }); });

async function request(p: string, body: Buffer, over: Partial<InstallRequest> = {}): Promise<InstallRequest> {
  root = await mkdtemp(path.join(tmpdir(), 'lander-nf-'));
  await mkdir(path.join(root, 'downloads'));
  srv.serve(p, body);
  return workerRequest({ root, url: srv.url(p), sha256: sha256Hex(body), jobId: `nf${++n}`, download: { retries: 2 } }, over);
}

const archive = (bytes: number) => buildTarGz([{ name: 'lib/blob.so', content: randomBytes(bytes), mode: 0o755 }, { name: 'VERSION', content: '1\n' }], 1);

/** A port nothing listens on: bound, then closed. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function logs() {
  const list: LogEvent[] = [];
  return { list, opts: { onLog: (e: LogEvent) => list.push(e) } };
}

describe('network faults', () => {
  it('connection refused: bounded retries, then an error naming the URL, the cause and the attempts', async () => {
    const req = await request('/unused-refused', Buffer.from('x'));
    const url = `http://127.0.0.1:${await closedPort()}/a.tar.gz`;
    req.urls = [url];
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toBe(`Cannot download ${url}: connect ECONNREFUSED ${new URL(url).host} (after 3 attempts)`);
    expect((err as DownloadError).data).toMatchObject({ url, attempts: 3 });
  });

  it('a body shorter than its Content-Length (clean close): resumed with Range', async () => {
    const gz = await archive(1 << 20);
    const p = '/short.tar.gz';
    const req = await request(p, gz);
    srv.misbehave(p, { endAfter: 400_000 });
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    // Node hands over all 400,000 bytes before the close; Deno may drop some buffered ones: either way a Range resume.
    expect(srv.stats(p).ranges).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    expect(Number(/\d+/.exec(srv.stats(p).ranges[1]!)![0])).toBeGreaterThan(0);
    expect(srv.stats(p).bytesSent).toBe(400_000 + gz.length - Number(/\d+/.exec(srv.stats(p).ranges[1]!)![0]));
  });

  it('a slow trickle is not cut while bytes flow, however long it takes', async () => {
    const gz = await archive(200_000);
    const p = '/trickle.tar.gz';
    // ~1.5 s at 150 kB/s, with a 300 ms idle timeout: only a silence may end it.
    const req = await request(p, gz, { download: { connectTimeoutMs: 2000, idleTimeoutMs: 300, retries: 0, backoffInitialMs: 10, backoffMaxMs: 50 } });
    srv.misbehave(p, { rate: 150_000 });
    const t0 = performance.now();
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    expect(performance.now() - t0).toBeGreaterThan(1000);
    expect(srv.stats(p).requests).toBe(1);
  });

  it.each([500, 502, 503, 504, 429])('HTTP %i is retried', async (status) => {
    const gz = await archive(100_000);
    const p = `/status-${status}.tar.gz`;
    const req = await request(p, gz);
    srv.misbehave(p, { status, times: 2 });
    const c = logs();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(srv.stats(p).requests).toBe(3);
    expect(c.list.filter((l) => l.event === 'download.retry')).toHaveLength(2);
  });

  it('gives up after the retries with the status, the URL and the attempts in the error', async () => {
    const req = await request('/always-503.tar.gz', await archive(1000));
    srv.misbehave('/always-503.tar.gz', { status: 503, times: 10 });
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect((err as DownloadError).code).toBe('ERR_HTTP_STATUS');
    expect((err as Error).message).toBe(`Cannot download ${req.urls[0]}: the server answered HTTP 503 (after 3 attempts)`);
    expect(srv.stats('/always-503.tar.gz').requests).toBe(3);
  });

  it('429 with Retry-After in seconds is honoured over a shorter backoff', async () => {
    const p = '/ra-seconds.tar.gz';
    const req = await request(p, await archive(1000));
    srv.misbehave(p, { status: 429, retryAfter: '1' });
    await runInstallWorker(req);
    const t = srv.stats(p).times;
    expect(t[1]! - t[0]!).toBeGreaterThanOrEqual(950);
  });

  it('503 with Retry-After as an HTTP date is honoured', async () => {
    const p = '/ra-date.tar.gz';
    const req = await request(p, await archive(1000));
    // The retry may not come before the date named (less its truncation to whole seconds), however
    // late the first request was made on a loaded machine.
    const until = Date.now() + 2000;
    const untilPerf = performance.now() + 2000;
    srv.misbehave(p, { status: 503, retryAfter: new Date(until).toUTCString() });
    await runInstallWorker(req);
    const t = srv.stats(p).times;
    expect(t).toHaveLength(2);
    expect(t[1]!).toBeGreaterThanOrEqual(untilPerf - (until % 1000) - 50);
  });

  it('a redirect loop fails with ERR_TOO_MANY_REDIRECTS naming the URL, without hammering it', async () => {
    const req = await request('/loop-unused', Buffer.from('x'));
    srv.misbehave('/loop-a', { redirectTo: '/loop-b', times: 100 });
    srv.misbehave('/loop-b', { redirectTo: '/loop-a', times: 100 });
    req.urls = [srv.url('/loop-a')];
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect((err as DownloadError).code).toBe('ERR_TOO_MANY_REDIRECTS');
    expect((err as Error).message).toBe(`Cannot download ${req.urls[0]}: more than 10 redirects (after 1 attempt)`);
    expect(srv.stats('/loop-a').requests).toBe(6);
  });

  it('an ETag that changes between attempts restarts from zero (If-Range answered with the whole body)', async () => {
    const gz = await archive(1 << 20);
    const p = '/etag.tar.gz';
    const req = await request(p, gz);
    srv.serve(p, gz, { etag: '"v1"' });
    srv.misbehave(p, { cutAfter: 300_000 });
    const c = logs();
    const pending = runInstallWorker(req, c.opts);
    // Re-published under a new ETag while the first attempt is cut: the resume must not mix the two.
    while (srv.stats(p).requests < 1) await new Promise((r) => setTimeout(r, 5));
    srv.serve(p, gz, { etag: '"v2"' });
    const done = await pending;
    expect(done.sha256).toBe(req.sha256);
    expect(srv.stats(p).ifRanges[1]).toBe('"v1"');
    expect(c.list.find((l) => l.event === 'download.restart')?.fields.reason).toMatch(/ignored the range or the file changed/);
    expect(srv.stats(p).bytesSent).toBe(300_000 + gz.length);
  });

  it('416 for a resume range past the end of a file that shrank: starts over from zero', async () => {
    const old = await archive(400_000);
    const gz = await archive(200_000);
    const p = '/416.tar.gz';
    const req = await request(p, gz);
    // 300 kB of an older, longer file, recorded without a validator to send If-Range with.
    await writeFile(req.partPath, old.subarray(0, 300_000));
    await writeFile(`${req.partPath}.json`, JSON.stringify({ url: req.urls[0] }));
    const c = logs();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(c.list.find((l) => l.event === 'download.restart')?.fields.reason).toMatch(/416/);
    expect(srv.stats(p).ranges).toEqual(['bytes=300000-', undefined]);
  });

  it('416 whose Content-Range says the .part is already the whole file: complete, no body fetched', async () => {
    const gz = await archive(200_000);
    const p = '/416-complete.tar.gz';
    const req = await request(p, gz);
    await writeFile(req.partPath, gz);
    await writeFile(`${req.partPath}.json`, JSON.stringify({ url: req.urls[0] }));
    const done = await runInstallWorker(req);
    expect(done).toMatchObject({ sha256: req.sha256, reusedBytes: gz.length, downloadedBytes: 0 });
    expect(srv.stats(p)).toMatchObject({ requests: 1, bytesSent: 0 });
  });
});

describe('mirrors', () => {
  it('tries the next mirror when the first cannot be reached', async () => {
    const gz = await archive(100_000);
    const req = await request('/m1/a.tar.gz', gz);
    const dead = `http://127.0.0.1:${await closedPort()}/a.tar.gz`;
    req.urls = [dead, srv.url('/m1/a.tar.gz')];
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    expect(srv.stats('/m1/a.tar.gz').requests).toBe(1);
  });

  it('a mirror serving other bytes fails the digest and the next mirror is tried from zero', async () => {
    const good = await archive(300_000);
    const req = await request('/m2/good.tar.gz', good);
    srv.serve('/m2/evil.tar.gz', await archive(300_000));
    req.urls = [srv.url('/m2/evil.tar.gz'), srv.url('/m2/good.tar.gz')];
    const c = logs();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(c.list.find((l) => l.event === 'download.mirror-mismatch')?.fields).toMatchObject({ url: req.urls[0], next: req.urls[1], expected: req.sha256 });
    expect(await readFile(path.join(req.stagingDir, 'VERSION'), 'utf8')).toBe('1\n');
    expect((await stat(req.partPath)).size).toBe(good.length);
  });

  it('when every mirror fails, the error names each URL, how it failed and how often', async () => {
    const req = await request('/m3/unused', Buffer.from('x'));
    srv.misbehave('/m3/a.tar.gz', { status: 502, times: 10 });
    req.urls = [srv.url('/m3/a.tar.gz'), srv.url('/m3/missing.tar.gz')];
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `Cannot download server 0.3.1 from any of its 2 URLs: ${req.urls[0]}: the server answered HTTP 502 (after 3 attempts); ${req.urls[1]}: the server answered HTTP 404 (after 1 attempt)`,
    );
  });

  it('a corrupt mirror (one flipped byte: a gzip/tar error) is skipped; the next mirror installs, the 404 before it is logged', async () => {
    const good = await archive(300_000);
    // One flipped bit in the gzip header's reserved flags: gunzip fails on the first chunk. (A flip inside the
    // deflate data often inflates "fine" until the CRC at the end, where the digest check may see it first:
    // also a skip, but not this path; seen on Node 24.) Served slowly, so the error comes before the end.
    const bad = Buffer.from(good);
    bad[3]! ^= 0x80;
    const req = await request('/m5/good.tar.gz', good);
    srv.serve('/m5/bad.tar.gz', bad, { rate: 1_000_000 });
    req.urls = [srv.url('/m5/missing.tar.gz'), srv.url('/m5/bad.tar.gz'), srv.url('/m5/good.tar.gz')];
    const c = logs();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(await readFile(path.join(req.stagingDir, 'VERSION'), 'utf8')).toBe('1\n');
    expect(c.list.find((l) => l.event === 'download.mirror-next')?.fields).toMatchObject({ url: req.urls[0], next: req.urls[1], status: 404 });
    expect(c.list.find((l) => l.event === 'download.mirror-corrupt')?.fields).toMatchObject({ url: req.urls[1], next: req.urls[2], code: expect.stringMatching(/^ERR_ARCHIVE/) });
    expect((await stat(req.partPath)).size).toBe(good.length);
  });

  it('when every mirror is corrupt or missing, the error lists each URL, how it failed and how often', async () => {
    const good = await archive(300_000);
    const bad = Buffer.from(good);
    bad[3]! ^= 0x80; // gzip's reserved flag bit: a gzip error on the first chunk (see above)
    const req = await request('/m6/unused', good);
    srv.serve('/m6/bad1.tar.gz', bad, { rate: 1_000_000 });
    srv.serve('/m6/bad2.tar.gz', bad, { rate: 1_000_000 });
    req.urls = [srv.url('/m6/bad1.tar.gz'), srv.url('/m6/missing.tar.gz'), srv.url('/m6/bad2.tar.gz')];
    const err = await runInstallWorker(req).catch((e: unknown) => e) as DownloadError;
    expect(err.code).toMatch(/^ERR_ARCHIVE/);
    expect(err.message).toMatch(new RegExp(`^Cannot download server 0\\.3\\.1 from any of its 3 URLs: ${req.urls[0]}: .+ \\(after 1 attempt\\); ${req.urls[1]}: the server answered HTTP 404 \\(after 1 attempt\\); ${req.urls[2]}: .+ \\(after 1 attempt\\)$`));
    expect((err.data.tried as unknown[]).length).toBe(3);
    await expect(stat(req.partPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('when every mirror serves other bytes: a digest mismatch naming the last mirror, and the .part is dropped', async () => {
    const req = await request('/m4/a.tar.gz', await archive(1000), { sha256: 'e'.repeat(64) });
    srv.serve('/m4/b.tar.gz', await archive(1000));
    req.urls = [srv.url('/m4/a.tar.gz'), srv.url('/m4/b.tar.gz')];
    req.partPath = path.join(root, 'downloads', `${'e'.repeat(64)}.part`);
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toContain(req.urls[1]);
    await expect(stat(req.partPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('lander install: the digest comes from the FIRST URL\'s sidecar, never from the mirror that served the bytes', async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lander-nf-cli-'));
    const good = await archive(100_000);
    const evil = await archive(100_000);
    srv.serve('/primary/core-1.tar.gz', evil); // the primary's archive was tampered with; its sidecar was not
    srv.serve('/primary/core-1.tar.gz.sha256', `${sha256Hex(good)}  core-1.tar.gz\n`);
    srv.serve('/mirror/core-1.tar.gz', good);
    srv.serve('/mirror/core-1.tar.gz.sha256', `${sha256Hex(evil)}  core-1.tar.gz\n`); // must never be read
    const configPath = path.join(root, 'lander.json');
    await writeFile(configPath, JSON.stringify({
      root: path.join(root, 'root'),
      components: { core: { version: '1', url: [`${srv.origin}/primary/core-{version}.tar.gz`, `${srv.origin}/mirror/core-{version}.tar.gz`], sha256Url: '{url}.sha256' } },
      download: { retries: 0, backoffInitial: '10ms', connectTimeout: '2s', idleTimeout: '2s' },
    }));
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.logs.find((l) => l.event === 'download.mirror-mismatch')).toMatchObject({ url: srv.url('/primary/core-1.tar.gz'), expected: sha256Hex(good) });
    expect(r.logs.find((l) => l.event === 'install.verified')).toMatchObject({ sha256: sha256Hex(good) });
    expect(srv.stats('/mirror/core-1.tar.gz.sha256').requests).toBe(0);
    expect(await readFile(path.join(root, 'root/current/VERSION'), 'utf8')).toBe('1\n');
  });
});
