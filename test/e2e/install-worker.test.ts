/**
 * The install worker end to end: real worker thread, real HTTP server on
 * loopback, real archives, real file system.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readlink, readdir, rm, stat, lstat, writeFile, mkdir } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runInstallWorker } from '../../src/install/worker-client.ts';
import type { InstallRequest, LogEvent, ProgressEvent } from '../../workers/protocol.ts';
import { ArchiveError, DigestMismatchError, DownloadError, hasCode } from '../../src/base/errors.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, makeVoiceboxTree, packDir, paddedBody, paxRecord, rawHeader, sha256Hex, type ArchiveEntry } from '../helpers/archive.ts';
import { GUNZIP_MODES, workerRequest } from '../helpers/install-request.ts';

let srv: TestServer;
let root: string;
let n = 0;
/** The request fields of the mode under test (see MODES). */
let modeOver: Partial<InstallRequest> = {};
afterEach(async () => { if (root) await rm(root, { recursive: true, force: true }); });

/** Every case runs in both GUNZIP_MODES, each mode with its own server (request counts and misbehaviours are per mode). */
function perMode(over: Partial<InstallRequest>): void {
  beforeAll(async () => { srv = await startTestServer(); modeOver = over; });
  afterAll(async () => { await srv.close(); modeOver = {}; });
}

async function request(p: string, body: Buffer, over: Partial<InstallRequest> = {}): Promise<InstallRequest> {
  root = await mkdtemp(path.join(tmpdir(), 'lander-iw-'));
  await mkdir(path.join(root, 'downloads'));
  srv.serve(p, body);
  return workerRequest({ root, url: srv.url(p), sha256: sha256Hex(body), jobId: `job${++n}` }, { ...modeOver, ...over });
}

function collect() {
  const logs: LogEvent[] = [];
  const progress: ProgressEvent[] = [];
  return { logs, progress, opts: { onLog: (e: LogEvent) => logs.push(e), onProgress: (e: ProgressEvent) => progress.push(e) } };
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(() => true, () => false);
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe.each(GUNZIP_MODES)('install worker, gunzip on the %s thread', (where, over) => {
  perMode(over);
  it('extracts a voicebox-like archive exactly: contents, modes, symlink', async () => {
    const src = await mkdtemp(path.join(tmpdir(), 'lander-src-'));
    const written = await makeVoiceboxTree(src, { payloadBytes: 512 * 1024 });
    const gz = await packDir(src);
    const req = await request('/good.tar.gz', gz);
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(done.bytes).toBe(gz.length);
    expect(done.downloadedBytes).toBe(gz.length);
    expect(done.reusedBytes).toBe(0);
    expect(done.inflatedIn).toBe(where);
    for (const rel of written) {
      const a = await lstat(path.join(src, rel));
      const b = await lstat(path.join(req.stagingDir, rel));
      expect(b.isSymbolicLink(), rel).toBe(a.isSymbolicLink());
      if (a.isSymbolicLink()) expect(await readlink(path.join(req.stagingDir, rel))).toBe(await readlink(path.join(src, rel)));
      else expect((await readFile(path.join(req.stagingDir, rel))).equals(await readFile(path.join(src, rel))), rel).toBe(true);
    }
    expect(await tree(req.stagingDir)).toEqual(await tree(src));
    expect((await stat(path.join(req.stagingDir, 'voicebox-server-cuda'))).mode & 0o7777).toBe(0o755);
    expect((await stat(path.join(req.stagingDir, '_internal/base_library.zip'))).mode & 0o7777).toBe(0o644); // 0444 clamped
    expect((await stat(path.join(req.stagingDir, '_internal'))).mode & 0o7777).toBe(0o755);
    const rec = done.files.find((f) => f.path === '_internal/lib/libcudart.so');
    expect(rec).toMatchObject({ type: 'symlink', linkname: 'libcudart.so.12' });
    expect(done.files.find((f) => f.path === 'voicebox-server-cuda')).toMatchObject({ type: 'file', mode: 0o755, size: 24 });
    // Each file's record carries its content's SHA-256 (hashed as it is written).
    const files = done.files.filter((f) => f.type === 'file');
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect(f.sha256, f.path).toBe(sha256Hex(await readFile(path.join(src, f.path))));
    // The .part stays until the caller commits the tree (a crash before that replays it instead of downloading again).
    expect((await stat(req.partPath)).size).toBe(gz.length);
    expect(c.logs.map((l) => l.event)).toContain('download.start');
    expect(c.progress.at(-1)).toMatchObject({ bytes: gz.length, total: gz.length });
    await rm(src, { recursive: true, force: true });
  });

  it('clamps setuid, sticky and world-writable modes; keeps hard links to earlier files', async () => {
    const gz = await buildTarGz([
      { name: 'bin/tool', content: 'x', mode: 0o4777 },
      { name: 'data', content: 'y', mode: 0o666 },
      { type: 'directory', name: 'shared/', mode: 0o1777 },
      { type: 'link', name: 'bin/tool2', linkname: 'bin/tool' },
    ]);
    const req = await request('/modes.tar.gz', gz);
    const done = await runInstallWorker(req);
    expect((await stat(path.join(req.stagingDir, 'bin/tool'))).mode & 0o7777).toBe(0o755);
    expect((await stat(path.join(req.stagingDir, 'data'))).mode & 0o7777).toBe(0o644);
    expect((await stat(path.join(req.stagingDir, 'shared'))).mode & 0o7777).toBe(0o755);
    expect((await stat(path.join(req.stagingDir, 'bin/tool2'))).ino).toBe((await stat(path.join(req.stagingDir, 'bin/tool'))).ino);
    expect(done.files.find((f) => f.path === 'bin/tool2')).toMatchObject({ type: 'link', linkname: 'bin/tool', sha256: sha256Hex('x') });
  });

  it('digest mismatch: staging and .part gone, error shows expected and actual', async () => {
    const gz = await buildTarGz([{ name: 'a', content: 'hello' }]);
    const req = await request('/mismatch.tar.gz', gz, { sha256: 'f'.repeat(64) });
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    const e = err as DigestMismatchError;
    expect(e.code).toBe('ERR_DIGEST_MISMATCH');
    expect(e.data).toMatchObject({ expected: 'f'.repeat(64), actual: sha256Hex(gz) });
    expect(e.message).toContain(sha256Hex(gz));
    expect(e.message).toContain('f'.repeat(64));
    expect(await exists(req.stagingDir)).toBe(false);
    expect(await exists(req.partPath)).toBe(false);
    expect(await exists(`${req.partPath}.json`)).toBe(false);
  });

  it('resumes a body cut at half with Range, without downloading the first half again', async () => {
    const big = randomBytes(6 << 20);
    const gz = await buildTarGz([{ name: 'lib/big.so', content: big, mode: 0o755 }, { name: 'README', content: 'hi' }], 1);
    const p = '/cut.tar.gz';
    const req = await request(p, gz);
    const cut = Math.floor(gz.length / 2);
    srv.misbehave(p, { cutAfter: cut });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect((await readFile(path.join(req.stagingDir, 'lib/big.so'))).equals(big)).toBe(true);
    const st = srv.stats(p);
    expect(st.requests).toBe(2);
    // Every byte received before the cut is kept, also those the feed still buffered: the Range starts at the cut.
    expect(st.ranges[1]).toBe(`bytes=${cut}-`);
    // If-Range carries exactly the ETag of the first answer: a changed file then restarts from zero, never splices.
    expect(st.ifRanges[0]).toBeUndefined();
    expect(st.ifRanges[1]).toBe(`"${createHash('sha256').update(gz).digest('hex').slice(0, 16)}"`);
    expect(st.bytesSent).toBe(gz.length);
    expect(done.downloadedBytes).toBe(gz.length);
    expect(c.logs.map((l) => l.event)).toContain('download.retry');
  });

  it('resumes from a .part left by an earlier run: replays it, then asks only for the rest', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(3 << 20) }], 1);
    const p = '/part.tar.gz';
    const req = await request(p, gz);
    const half = Math.floor(gz.length / 2);
    await writeFile(req.partPath, gz.subarray(0, half));
    const etag = `"${sha256Hex(gz).slice(0, 16)}"`;
    await writeFile(`${req.partPath}.json`, JSON.stringify({ url: req.urls[0], etag, total: gz.length }));
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.reusedBytes).toBe(half);
    expect(done.downloadedBytes).toBe(gz.length - half);
    expect(srv.stats(p).bytesSent).toBe(gz.length - half);
    expect(srv.stats(p).ranges[0]).toBe(`bytes=${half}-`);
    expect(c.logs.find((l) => l.event === 'download.resume')?.fields).toMatchObject({ offset: half });
  });

  it('restarts cleanly when the server ignores Range (200)', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(2 << 20) }, { name: 'x/y', content: 'z' }], 1);
    const p = '/norange.tar.gz';
    const req = await request(p, gz);
    srv.misbehave(p, { cutAfter: Math.floor(gz.length / 3) });
    srv.misbehave(p, { ignoreRange: true });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(await readFile(path.join(req.stagingDir, 'x/y'), 'utf8')).toBe('z');
    expect(c.logs.map((l) => l.event)).toContain('download.restart');
    expect(done.files.filter((f) => f.path === 'blob')).toHaveLength(1);
  });

  it('restarts from zero on a wrong Content-Range start', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(1 << 20) }], 1);
    const p = '/wrongrange.tar.gz';
    const req = await request(p, gz);
    srv.misbehave(p, { cutAfter: 300_000 });
    srv.misbehave(p, { wrongRangeShift: 1000 });
    const c = collect();
    const done = await runInstallWorker(req, c.opts);
    expect(done.sha256).toBe(req.sha256);
    expect(c.logs.some((l) => l.event === 'download.restart')).toBe(true);
  });

  it('retries 503 with Retry-After and follows an expiring redirect again from the original URL', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(1 << 20) }], 1);
    const p = '/flaky.tar.gz';
    const req = await request(p, gz);
    srv.misbehave('/release.tar.gz', { status: 503, retryAfter: '0' });
    srv.misbehave('/release.tar.gz', { redirectTo: p, expiring: true, times: 3 });
    srv.misbehave(p, { cutAfter: 200_000 });
    req.urls = [srv.url('/release.tar.gz')];
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    expect(srv.stats('/release.tar.gz').requests).toBe(3);
  });

  it('stalled body: idle timeout, then resume', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(1 << 20) }], 1);
    const p = '/stall.tar.gz';
    const req = await request(p, gz, { download: { connectTimeoutMs: 2000, idleTimeoutMs: 300, retries: 2, backoffInitialMs: 10, backoffMaxMs: 20 } });
    srv.misbehave(p, { stallAfter: 100_000 });
    const done = await runInstallWorker(req);
    expect(done.sha256).toBe(req.sha256);
    expect(srv.stats(p).requests).toBe(2);
  });

  it('404 is not retried and names the URL', async () => {
    const req = await request('/exists.tar.gz', Buffer.from('x'));
    req.urls = [srv.url('/missing.tar.gz')];
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).code).toBe('ERR_HTTP_STATUS');
    expect((err as Error).message).toContain('/missing.tar.gz');
    expect(srv.stats('/missing.tar.gz').requests).toBe(1);
    expect(await exists(req.stagingDir)).toBe(false);
  });

  it('enforces the size cap while streaming', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(1 << 20) }], 1);
    const req = await request('/big.tar.gz', gz, { maxBytes: 500_000 });
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect(hasCode(err, 'ERR_SIZE_LIMIT')).toBe(true);
    expect(await exists(req.stagingDir)).toBe(false);
  });

  it('reads file: URLs', async () => {
    const gz = await buildTarGz([{ name: 'a/b', content: 'file url' }]);
    const req = await request('/unused', gz);
    const file = path.join(root, 'a.tar.gz');
    await writeFile(file, gz);
    req.urls = [pathToFileURL(file).href];
    await runInstallWorker(req);
    expect(await readFile(path.join(req.stagingDir, 'a/b'), 'utf8')).toBe('file url');
  });

  it('abort keeps a resumable .part, removes staging and rejects ERR_ABORTED', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(2 << 20) }], 1);
    const p = '/abort.tar.gz';
    const req = await request(p, gz);
    srv.misbehave(p, { stallAfter: 700_000 });
    const ac = new AbortController();
    const pending = runInstallWorker(req, { signal: ac.signal, onProgress: (e) => { if (e.bytes >= 600_000) ac.abort(new Error('shutdown')); } });
    const err = await pending.catch((e: unknown) => e);
    expect(hasCode(err, 'ERR_ABORTED')).toBe(true);
    expect(await exists(req.stagingDir)).toBe(false);
    const size = (await stat(req.partPath)).size;
    expect(size).toBeGreaterThanOrEqual(600_000);
    expect(JSON.parse(await readFile(`${req.partPath}.json`, 'utf8'))).toMatchObject({ url: req.urls[0], total: gz.length });
    // and a second run resumes from it
    const done = await runInstallWorker({ ...req, jobId: 'again' });
    expect(done.reusedBytes).toBe(size);
  });
});

describe.each(GUNZIP_MODES)('install worker: hostile archives, gunzip on the %s thread', (_where, over) => {
  perMode(over);
  const cases: [string, ArchiveEntry[], string, string][] = [
    ['../ path (#1)', [{ name: '../moo', content: 'x' }], 'ERR_ARCHIVE_PATH', '../moo'],
    ['nested .. (#1)', [{ name: 'tmp/../../moo', content: 'x' }], 'ERR_ARCHIVE_PATH', 'tmp/../../moo'],
    ['absolute path (#2)', [{ name: '/tmp/lander-moo', content: 'x' }], 'ERR_ARCHIVE_PATH', '/tmp/lander-moo'],
    ['absolute symlink, then a file through it (#4)', [{ type: 'symlink', name: 'moo', linkname: '/tmp/moo' }, { name: 'moo', content: 'x' }], 'ERR_ARCHIVE_LINK', 'moo'],
    ['symlink escape (#6)', [{ type: 'symlink', name: 'cur', linkname: '.' }, { type: 'symlink', name: 'par', linkname: 'cur/..' }, { name: 'par/moo', content: 'x' }], 'ERR_ARCHIVE_LINK', 'par'],
    ['write through a symlink (#7)', [{ type: 'directory', name: 'd/' }, { type: 'symlink', name: 'e', linkname: 'd' }, { name: 'e/f', content: 'x' }], 'ERR_ARCHIVE_LINK', 'e/f'],
    ['link replacing a folder (#7)', [{ type: 'directory', name: 'd/x/' }, { type: 'symlink', name: 'd/x', linkname: '.' }], 'ERR_ARCHIVE_PATH', 'd/x'],
    ['hardlink outside (#8)', [{ type: 'link', name: 'pw', linkname: '/etc/passwd' }], 'ERR_ARCHIVE_LINK', 'pw'],
    ['link through up-links (#9)', [{ type: 'symlink', name: 'a/b/up', linkname: '../..' }, { type: 'symlink', name: 'a/b/escape', linkname: 'up/..' }], 'ERR_ARCHIVE_LINK', 'a/b/escape'],
    ['hardlink before its target (#10)', [{ type: 'link', name: 'h', linkname: 'f' }, { name: 'f', content: 'x' }], 'ERR_ARCHIVE_LINK', 'h'],
    ['case-fold collision (#11)', [{ name: 'lib/STRASSE', content: 'x' }, { name: 'lib/straße', content: 'y' }], 'ERR_ARCHIVE_PATH', 'lib/straße'],
    ['a later link re-pointing an earlier one (#9, order trick)', [{ type: 'directory', name: 'd/' }, { type: 'symlink', name: 'a', linkname: 'd/b/..' }, { type: 'symlink', name: 'd/b', linkname: '..' }], 'ERR_ARCHIVE_LINK', 'd/b'],
    ['unknown type flag (#12)', [{ type: 'raw', data: rawHeader('odd', 'Z', 0) }], 'ERR_ARCHIVE_ENTRY_TYPE', 'odd'],
    ['character device (#12)', [{ type: 'header', header: { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 } }], 'ERR_ARCHIVE_ENTRY_TYPE', 'dev'],
    ['fifo (#12)', [{ type: 'header', header: { name: 'fifo', type: 'fifo' } }], 'ERR_ARCHIVE_ENTRY_TYPE', 'fifo'],
  ];
  it.each(cases)('%s', async (_what, entries, code, entry) => {
    const gz = await buildTarGz(entries);
    const req = await request(`/hostile${n}.tar.gz`, gz);
    const before = await readdir(root);
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).code).toBe(code);
    expect((err as ArchiveError).data.entry).toBe(entry);
    expect((err as Error).message).toMatch(/^Cannot extract server: entry /);
    expect(await exists(req.stagingDir)).toBe(false);
    expect((await readdir(root)).filter((f) => f !== 'staging')).toEqual(before);
    expect(await readdir(path.join(root, 'staging'))).toEqual([]);
    expect(await readdir(path.join(root, 'downloads'))).toEqual([]);
    expect(await exists('/tmp/lander-moo')).toBe(false);
  });

  it('a gzip bomb stops at the expansion ratio (#16)', async () => {
    const gz = await buildTarGz([{ name: 'zeros', content: Buffer.alloc(64 << 20) }], 9);
    const req = await request('/bomb.tar.gz', gz, { limits: { maxEntries: 10, maxExpansionRatio: 20, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 1024, maxExtractedBytes: 1 << 30 } });
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect((err as ArchiveError).code).toBe('ERR_ARCHIVE_LIMIT');
    expect(await exists(req.stagingDir)).toBe(false);
  });

  it('a pax header over maxMetaEntrySize is rejected (#17)', async () => {
    const pax = Buffer.from(paxRecord('comment', 'x'.repeat(1_200_000)));
    const gz = await buildTarGz([
      { type: 'raw', data: rawHeader('PaxHeader/f', 'x', pax.length) },
      { type: 'raw', data: paddedBody(pax) },
      { name: 'f', content: 'x' },
    ]);
    const req = await request('/pax.tar.gz', gz);
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect((err as ArchiveError).code).toBe('ERR_ARCHIVE_LIMIT');
    expect((err as ArchiveError).data).toMatchObject({ entry: 'PaxHeader/f', limit: 'maxMetaEntrySize' });
    // Refused on the header block, before tar-stream buffered its 1.2 MB body.
    expect((err as ArchiveError).message).toMatch(/refused before reading it/);
  });

  it('a global pax header carrying path= does not rename entries (#18)', async () => {
    const pax = Buffer.from(paxRecord('path', '../../evil'));
    const gz = await buildTarGz([
      { type: 'raw', data: rawHeader('pax_global_header', 'g', pax.length) },
      { type: 'raw', data: paddedBody(pax) },
      { name: 'f', content: 'x' },
    ]);
    const req = await request('/gpax.tar.gz', gz);
    const err = await runInstallWorker(req).then(() => undefined, (e: unknown) => e);
    // tar-stream merges a global path into the next pax header only; with none, `f` stays `f`.
    if (err) expect((err as ArchiveError).code).toBe('ERR_ARCHIVE_PATH');
    else expect(await readFile(path.join(req.stagingDir, 'f'), 'utf8')).toBe('x');
  });

  it('a truncated archive fails (#19)', async () => {
    const gz = await buildTarGz([{ name: 'blob', content: randomBytes(100_000) }]);
    const cut = gz.subarray(0, gz.length - 5000);
    const req = await request('/trunc.tar.gz', cut);
    const err = await runInstallWorker(req).catch((e: unknown) => e);
    expect((err as ArchiveError).code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(await exists(req.stagingDir)).toBe(false);
  });
});
