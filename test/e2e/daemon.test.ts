/**
 * `lander run` as a daemon, end to end: a real child process, a real HTTP
 * server on 127.0.0.1 serving archives built here, the stand-in GPU server,
 * real config edits, real signals, the status API over its unix socket and TCP.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig, type PublishedAsset } from '../helpers/release.ts';
import { startDaemon, type DaemonProc } from '../helpers/daemon-proc.ts';
import { request } from '../helpers/raw-http.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';
import { ApiClient } from '../../src/cli/api-client.ts';
import type { DaemonEvent } from '../../src/report/daemon-model.ts';
import { freePort } from '../helpers/free-port.ts';

let server: TestServer;
let work: string;
const cores: Record<string, PublishedAsset> = {};
let bigCuda: PublishedAsset;
const daemons: DaemonProc[] = [];

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-d-'));
  for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0']) {
    const dir = path.join(work, `src-core-${v}`);
    await makeCoreTree(dir, v, { smallFiles: 20 });
    cores[v] = await publish(server, v, 'voicebox-server-cuda.tar.gz', dir);
  }
  // A core whose server takes 5 s to become healthy: a landing is still in flight when SIGTERM comes.
  const slow = path.join(work, 'src-core-slow');
  await makeCoreTree(slow, '1.5.0-slow', { smallFiles: 5, flags: '--start-delay-ms 5000' });
  cores['1.5.0-slow'] = await publish(server, '1.5.0-slow', 'voicebox-server-cuda.tar.gz', slow);
  // One healthy after 2.5 s: long enough for a config edit to arrive while it lands.
  const slowish = path.join(work, 'src-core-slowish');
  await makeCoreTree(slowish, '1.6.0-slow', { smallFiles: 5, flags: '--start-delay-ms 2500' });
  cores['1.6.0-slow'] = await publish(server, '1.6.0-slow', 'voicebox-server-cuda.tar.gz', slowish);
  const small = path.join(work, 'src-cuda');
  await makeCudaTree(small, { libBytes: 128 * 1024, libs: 2 });
  await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', small);
  const big = path.join(work, 'src-cuda-big');
  await makeCudaTree(big, { libBytes: 8 * 1024 * 1024, libs: 4 });
  bigCuda = await publish(server, 'libs', 'cuda-libs-cu128-v2.tar.gz', big);
});

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGTERM');
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});


interface Setup {
  root: string;
  configPath: string;
  port: number;
  /** Rewrites the config the way an editor does: a temp file renamed over it. */
  save(v: { core: string; cuda?: string }, extra?: Record<string, unknown>): Promise<void>;
  saveText(text: string): Promise<void>;
  start(): DaemonProc;
  api(): ApiClient;
}

async function setup(name: string, extra: Record<string, unknown> = {}): Promise<Setup> {
  const dir = path.join(work, name);
  const root = path.join(dir, 'root');
  await mkdir(root, { recursive: true });
  const configPath = path.join(dir, 'lander.json');
  const port = await freePort();
  const saveText = async (text: string) => {
    const tmp = `${configPath}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, configPath);
  };
  const save = (v: { core: string; cuda?: string }, ex: Record<string, unknown> = extra) =>
    saveText(
      JSON.stringify(
        releaseConfig(server, root, { server: v.core, cuda: v.cuda ?? 'cu128-v1', appTag: 'libs' }, {
          download: { retries: 2, backoffInitial: '50ms', connectTimeout: '2s', idleTimeout: '3s' },
          server: {
            command: './voicebox-server-cuda',
            args: ['--port', String(port)],
            health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '10s' },
            stop: { timeout: '3s' },
          },
          ...ex,
        }),
        null,
        2,
      ),
    );
  return {
    root,
    configPath,
    port,
    save,
    saveText,
    start() {
      const d = startDaemon(configPath);
      daemons.push(d);
      return d;
    },
    api: () => new ApiClient({ socketPath: path.join(root, 'lander.sock'), root, configPath }),
  };
}

/**
 * Exit 0 after a graceful stop, and the log's last word is the graceful path's.
 * (DaemonProc signals through signalChild, so a Deno parent reports the real exit too.)
 */
function expectCleanExit(r: { code: number | null; signal: NodeJS.Signals | null }, d: DaemonProc): void {
  expect(d.logs().at(-1)).toMatchObject({ event: 'daemon.stopped' });
  expect(r).toEqual({ code: 0, signal: null });
}

async function whoami(port: number): Promise<{ cwd: string; pid: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/cwd`);
  return (await res.json()) as { cwd: string; pid: number };
}

describe('lander run (daemon)', () => {
  it('installs, serves, and lands a config edit with a restart on the new core', async () => {
    const t = await setup('edit');
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 1);
    const first = await whoami(t.port);
    expect(first.cwd).toMatch(/generations\/1$/);
    // The daemon keeps a spare install worker from boot: the first install takes it (the other, if
    // both ran at once, started its own).
    const verified1 = d.logs().filter((r) => r.event === 'install.verified');
    expect(verified1.filter((r) => r.spareWorker === true).length).toBeGreaterThanOrEqual(1);

    const mark = d.logs().length;
    await t.save({ core: '1.1.0' });
    await d.waitFor((r) => r.event === 'config.loaded', { since: mark });
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark });
    const second = await whoami(t.port);
    expect(second.pid).not.toBe(first.pid);
    expect(second.cwd).toMatch(/generations\/2$/);
    expect(await readFile(path.join(second.cwd, '_internal/VERSION'), 'utf8')).toBe('1.1.0\n');
    // A new spare was started when the first install's worker exited: the edit's install took it.
    expect(d.logs().find((r) => r.event === 'install.verified' && r.version === '1.1.0')).toMatchObject({ spareWorker: true });
    // cuda-libs was not fetched again.
    expect(d.logs().filter((r) => r.event === 'install.verified' && r.component === 'cuda-libs')).toHaveLength(1);

    const status = await t.api().getJson('/status') as { components: Record<string, { installed?: string; desired?: string }>; server: { state: string; pid: number } };
    expect(status.components.server).toMatchObject({ installed: '1.1.0', desired: '1.1.0' });
    expect(status.server).toMatchObject({ state: 'healthy', pid: second.pid });

    expectCleanExit(await d.stop('SIGTERM'), d);
    // The server went down with it.
    await expect(fetch(`http://127.0.0.1:${t.port}/health`)).rejects.toThrow();
    await expect(stat(path.join(t.root, 'lander.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('/status shows each job in its real phase with the version being fetched: digest while the sidecar trickles, download while the archive streams', async () => {
    const t = await setup('phases');
    await t.save({ core: '1.0.0', cuda: 'cu128-v2' });
    const sidecar = '/download/vlibs/cuda-libs-cu128-v2.tar.gz.sha256';
    // About 3 s for the 94-byte sidecar, then the 32 MiB archive at 4 MiB/s.
    server.misbehave(sidecar, { rate: 32 });
    server.misbehave(bigCuda.urlPath, { rate: 4 * 1024 * 1024 });
    const d = t.start();
    await d.waitFor((r) => r.event === 'daemon.ready');
    const seen: string[] = [];
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline && !seen.includes('download')) {
      const st = (await t.api().getJson('/status')) as { components: Record<string, { job?: { phase: string; version: string } }> };
      const job = st.components['cuda-libs']?.job;
      if (job) {
        expect(job.version).toBe('cu128-v2');
        if (seen.at(-1) !== job.phase) seen.push(job.phase);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toContain('digest');
    expect(seen.indexOf('download')).toBeGreaterThan(seen.indexOf('digest'));
    await d.waitFor((r) => r.event === 'generation.landed', { timeoutMs: 40_000 });
  });

  it('rejects invalid JSON and wrong types by path, keeps the last good config, then takes a valid edit', async () => {
    const t = await setup('invalid');
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const pid = (await whoami(t.port)).pid;

    let mark = d.logs().length;
    await t.saveText('{ "root": ');
    const bad1 = await d.waitFor((r) => r.event === 'config.invalid', { since: mark });
    expect(JSON.stringify(bad1.issues)).toMatch(/Invalid JSON/);

    mark = d.logs().length;
    await t.save({ core: '1.2.0' }, { keepGenerations: 'three', download: { retries: -1 } });
    const bad2 = await d.waitFor((r) => r.event === 'config.invalid', { since: mark });
    const paths = (bad2.issues as { path: string }[]).map((i) => i.path).sort();
    expect(paths).toEqual(['download.retries', 'keepGenerations']);
    // Nothing changed: no install of 1.2.0, same server process.
    await new Promise((r) => setTimeout(r, 300));
    expect(d.logs().some((r) => r.event === 'download.start' && r.version === '1.2.0')).toBe(false);
    expect((await whoami(t.port)).pid).toBe(pid);
    const status = await t.api().getJson('/status') as { config: { lastInvalid?: { issues: { path: string }[] } } };
    expect(status.config.lastInvalid?.issues.map((i) => i.path).sort()).toEqual(['download.retries', 'keepGenerations']);

    // More of test/unit/config-malformed.test.ts, live: each is refused by path, and nothing changes.
    const badEdits: [Record<string, unknown>, string][] = [
      [{ components: { server: { version: '1.2.0', url: cores['1.2.0']!.url, sha256: cores['1.2.0']!.sha256, sha256Url: '{url}.sha256' } } }, 'components.server'],
      [{ server: { command: '../../bin/sh' } }, 'server.command'],
      [{ download: { idleTimeout: '-5s' } }, 'download.idleTimeout'],
      [{ download: { backoffMax: 1e308 } }, 'download.backoffMax'],
      [{ limits: { maxMetaEntrySize: '1TiB' } }, 'limits.maxMetaEntrySize'],
      [{ api: { tcp: { host: '0.0.0.0', port: 1, tokenFile: '/x' } } }, 'api.tcp.host'],
      [{ surprise: true }, '(top level)'],
    ];
    for (const [extra, field] of badEdits) {
      mark = d.logs().length;
      await t.save({ core: '1.2.0' }, extra);
      const bad = await d.waitFor((r) => r.event === 'config.invalid', { since: mark });
      expect((bad.issues as { path: string }[]).map((i) => i.path), JSON.stringify(extra)).toContain(field);
    }
    expect(d.logs().some((r) => r.event === 'download.start' && r.version === '1.2.0')).toBe(false);
    expect((await whoami(t.port)).pid).toBe(pid);

    mark = d.logs().length;
    await t.save({ core: '1.2.0' });
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark });
    expect((await whoami(t.port)).cwd).toMatch(/generations\/2$/);
  });

  it('two quick edits: the first version\'s download is aborted, only the final one lands', async () => {
    const t = await setup('quick');
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    // 1.1.0 stalls mid-body, so it is in flight when the next edit comes.
    server.misbehave(cores['1.1.0']!.urlPath, { stallAfter: 1000, times: 1 });
    let mark = d.logs().length;
    await t.save({ core: '1.1.0' });
    await d.waitFor((r) => r.event === 'download.start' && r.version === '1.1.0', { since: mark });
    mark = d.logs().length;
    await t.save({ core: '1.3.0' });
    await d.waitFor((r) => r.event === 'install.aborted' && r.version === '1.1.0', { since: mark });
    await d.waitFor((r) => r.event === 'generation.landed', { since: mark });
    const status = await t.api().getJson('/status') as { current: number; generations: { components: Record<string, string> }[] };
    expect(status.generations.map((g) => g.components.server)).toEqual(['1.0.0', '1.3.0']);
    expect(await readFile(path.join((await whoami(t.port)).cwd, '_internal/VERSION'), 'utf8')).toBe('1.3.0\n');
    expect(d.logs().some((r) => r.event === 'install.verified' && r.version === '1.1.0')).toBe(false);
    // The aborted download stayed resumable while 1.1.0 was wanted; once 1.3.0 landed, nothing wants it: it is pruned.
    const part = `${cores['1.1.0']!.sha256}.part`;
    const gc = d.logs().slice(mark).find((r) => r.event === 'store.gc' && (r.downloads as string[]).includes(part));
    expect(gc, 'the landing\'s gc removed the superseded .part').toBeDefined();
    expect(gc!.downloadBytes as number).toBeGreaterThanOrEqual(1000);
    expect((await readdir(path.join(t.root, 'downloads'))).filter((n) => n.startsWith(cores['1.1.0']!.sha256))).toEqual([]);
  });

  it('an edit back to a version while another lands: its .part outlives that landing\'s gc and resumes', async () => {
    // Timeouts above the sidecar's delay below: the wait is the server's, not a failure.
    const download = { retries: 2, backoffInitial: '50ms', connectTimeout: '2s', idleTimeout: '15s' };
    const t = await setup('edit-back', { download });
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const a = cores['1.1.0']!;
    server.misbehave(a.urlPath, { stallAfter: 1000, times: 1 });
    let mark = d.logs().length;
    await t.save({ core: '1.1.0' });
    await d.waitFor((r) => r.event === 'download.start' && r.version === '1.1.0', { since: mark });
    mark = d.logs().length;
    await t.save({ core: '1.6.0-slow' });
    await d.waitFor((r) => r.event === 'install.aborted' && r.version === '1.1.0', { since: mark });
    const part = path.join(t.root, 'downloads', `${a.sha256}.part`);
    expect((await stat(part)).size).toBeGreaterThanOrEqual(1000);
    // 1.6.0-slow swaps in and its server takes 2.5 s to be healthy; the landing's gc comes after that.
    // The edit back to 1.1.0 arrives meanwhile, and its sidecar answers only after 6 s: at the gc, no
    // install of 1.1.0 holds its digest; only the desired state's URLs say its .part is wanted.
    await d.waitFor((r) => r.event === 'generation.swap' && r.to === 2, { since: mark });
    server.misbehave(`${a.urlPath}.sha256`, { delayMs: 6000, times: 1 });
    const back = d.logs().length;
    await t.save({ core: '1.1.0' });
    const landed = await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark, timeoutMs: 20_000 });
    const at = d.logs().indexOf(landed);
    const early = d.logs().slice(back, at).filter((r) => r.version === '1.1.0' && /^download\./.test(String(r.event)));
    expect(early, 'no download of 1.1.0 began before the slow landing\'s gc').toEqual([]);
    expect(await readdir(path.join(t.root, 'downloads'))).toContain(`${a.sha256}.part`);
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 3, { since: back, timeoutMs: 20_000 });
    const resume = d.logs().slice(back).find((r) => r.event === 'download.resume' && r.version === '1.1.0');
    expect(resume?.offset as number).toBeGreaterThanOrEqual(1000);
    expect(server.stats(a.urlPath).ranges.at(-1)).toBe(`bytes=${resume!.offset as number}-`);
    expect(d.logs().slice(back).some((r) => r.event === 'download.start' && r.version === '1.1.0')).toBe(false);
    expect(await readFile(path.join((await whoami(t.port)).cwd, '_internal/VERSION'), 'utf8')).toBe('1.1.0\n');
  });

  it('follows a polled manifest: a new version installs, a 304 costs no download', async () => {
    const t = await setup('manifest');
    const manifestPath = '/manifests/stable.json';
    const manifest = (v: string) => JSON.stringify({ schema: 1, components: { server: { version: v, url: cores[v]!.url, sha256: cores[v]!.sha256 } } });
    server.serve(manifestPath, manifest('1.0.0'));
    // The config pins cuda-libs and leaves the server to the manifest.
    const cfg = releaseConfig(server, t.root, { server: 'x', cuda: 'cu128-v1', appTag: 'libs' }) as { components: Record<string, unknown> };
    await t.saveText(JSON.stringify({
      ...cfg,
      components: { 'cuda-libs': cfg.components['cuda-libs'] },
      manifest: { url: server.url(manifestPath), interval: '300ms', jitter: 0 },
      download: { retries: 1, backoffInitial: '50ms' },
    }));
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const archiveRequests = server.stats(cores['1.0.0']!.urlPath).requests;
    await expect.poll(() => server.stats(manifestPath).notModified ?? 0, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(server.stats(cores['1.0.0']!.urlPath).requests).toBe(archiveRequests);
    expect(d.logs().filter((r) => r.event === 'generation.landed')).toHaveLength(1);

    const mark = d.logs().length;
    server.serve(manifestPath, manifest('1.1.0'));
    await d.waitFor((r) => r.event === 'manifest.changed', { since: mark });
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark });
    const status = await t.api().getJson('/status') as { components: Record<string, { installed?: string }>; manifest?: { url: string } };
    expect(status.components.server!.installed).toBe('1.1.0');
    expect(status.manifest?.url).toBe(server.url(manifestPath));
  });

  it('streams progress over /events, serves /metrics and /status on the socket and on TCP with a token', async () => {
    const tokenFile = path.join(work, 'token');
    await writeFile(tokenFile, 'a-long-enough-secret-token-0123456789\n', { mode: 0o600 });
    const tcpPort = await freePort();
    const t = await setup('api', { api: { tcp: { port: tcpPort, tokenFile } } });
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');

    const events: DaemonEvent[] = [];
    const ac = new AbortController();
    const stream = t.api().events((e) => events.push(e as DaemonEvent), ac.signal).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    // A big cuda-libs cut at half, whose resume then comes at 16 MiB/s, so progress is visible over time
    // (at loopback speed the whole download can end within two progress intervals).
    server.misbehave(bigCuda.urlPath, { cutAfter: Math.floor(bigCuda.size / 2) });
    server.misbehave(bigCuda.urlPath, { rate: 16 * 1024 * 1024 });
    await t.save({ core: '1.0.0', cuda: 'cu128-v2' });
    await expect.poll(() => events.some((e) => e.type === 'landed'), { timeout: 30_000 }).toBe(true);
    ac.abort();
    await stream;
    const progress = events.filter((e): e is Extract<DaemonEvent, { type: 'progress' }> => e.type === 'progress' && e.component === 'cuda-libs');
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.at(-1)!.bytes).toBe(bigCuda.size);
    expect(progress.some((e) => e.bytes < bigCuda.size / 2)).toBe(true);
    expect(progress.some((e) => e.connections >= 1)).toBe(true);
    expect(events.some((e) => e.type === 'server.state' && e.to === 'healthy')).toBe(true);

    const metrics = await request({ socketPath: path.join(t.root, 'lander.sock') }, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    const fams = parsePromText(metrics.body);
    expect(sampleValue(fams, 'lander_download_bytes_total', { component: 'cuda-libs' })).toBeGreaterThanOrEqual(bigCuda.size);
    expect(sampleValue(fams, 'lander_server_up')).toBe(1);
    expect(sampleValue(fams, 'lander_download_connections', { component: 'cuda-libs' })).toBe(0); // the download is over
    expect(sampleValue(fams, 'lander_component_info', { component: 'cuda-libs', version: 'cu128-v2' })).toBe(1);

    const sockStatus = await request({ socketPath: path.join(t.root, 'lander.sock') }, 'GET', '/status');
    expect(sockStatus.status).toBe(200);
    expect((await stat(path.join(t.root, 'lander.sock'))).mode & 0o777).toBe(0o600);
    expect((await request({ port: tcpPort }, 'GET', '/status')).status).toBe(401);
    expect((await request({ port: tcpPort }, 'GET', '/status', { headers: { authorization: 'Bearer wrong-token-wrong-token-wrong' } })).status).toBe(401);
    const ok = await request({ port: tcpPort }, 'GET', '/status', { headers: { authorization: 'Bearer a-long-enough-secret-token-0123456789' } });
    expect(ok.status).toBe(200);
    expect(ok.json().components['cuda-libs'].installed).toBe('cu128-v2');
  });

  it('SIGTERM mid-download exits 0; the next start resumes the download', async () => {
    // A long idle timeout: the stalled first attempt must still be in flight when SIGTERM comes, even on a loaded machine.
    // One stream (segments have their own resume test): the .part is then the prefix the resume starts from.
    const t = await setup('sigterm', { download: { retries: 2, backoffInitial: '50ms', idleTimeout: '60s', connections: 1 } });
    await t.save({ core: '1.0.0', cuda: 'cu128-v2' });
    server.misbehave(bigCuda.urlPath, { stallAfter: Math.floor(bigCuda.size / 2), times: 1 });
    const sentBefore = server.stats(bigCuda.urlPath).bytesSent;
    const d = t.start();
    const part = path.join(t.root, 'downloads', `${bigCuda.sha256}.part`);
    await expect.poll(async () => (await stat(part).catch(() => ({ size: 0 }))).size, { timeout: 20_000 }).toBeGreaterThanOrEqual(Math.floor(bigCuda.size / 2) - 1024 * 1024);
    const t0 = performance.now();
    expectCleanExit(await d.stop('SIGTERM'), d);
    expect(performance.now() - t0).toBeLessThan(15_000);
    const partSize = (await stat(part)).size;
    expect(partSize).toBeGreaterThan(0);

    const d2 = t.start();
    const resume = await d2.waitFor((r) => r.event === 'download.resume' && r.component === 'cuda-libs');
    expect(resume).toMatchObject({ offset: partSize });
    await d2.waitFor((r) => r.event === 'generation.landed');
    const sent = server.stats(bigCuda.urlPath).bytesSent - sentBefore;
    expect(sent).toBeLessThanOrEqual(bigCuda.size + 2 * 1024 * 1024);
  });

  it('SIGHUP with a healthy server (log file rotated and reopened, config re-read), then SIGTERM: exits 0 promptly and stops the server', async () => {
    const logFile = path.join(work, 'sighup', 'log', 'lander.log');
    const t = await setup('sighup', { log: { file: logFile } });
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const srv = await whoami(t.port);
    // logrotate's way: move the file away, then SIGHUP; twice, as a second rotation would.
    for (const n of [1, 2]) {
      await rename(logFile, `${logFile}.${n}`);
      const mark = d.logs().length;
      expect(d.signal('SIGHUP')).toBe(true);
      await d.waitFor((r) => r.event === 'log.reopen', { since: mark });
      await d.waitFor((r) => r.event === 'config.reload', { since: mark });
    }
    // A reload of an unchanged config leaves the server alone.
    expect((await whoami(t.port)).pid).toBe(srv.pid);

    const t0 = performance.now();
    let hung: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      d.stop('SIGTERM'),
      new Promise<never>((_, reject) => (hung = setTimeout(() => reject(new Error(`lander did not exit 15 s after SIGTERM; last lines:\n${d.logs().slice(-10).map((x) => JSON.stringify(x)).join('\n')}`)), 15_000))),
    ]).finally(() => clearTimeout(hung));
    expectCleanExit(r, d);
    expect(performance.now() - t0).toBeLessThan(15_000);
    // The server went down with it, and the lock was released.
    await expect(fetch(`http://127.0.0.1:${t.port}/health`)).rejects.toThrow();
    const state = await readFile(`/proc/${srv.pid}/stat`, 'utf8').then((x) => x.slice(x.lastIndexOf(')') + 2, x.lastIndexOf(')') + 3), () => 'gone');
    expect(['gone', 'Z', 'X']).toContain(state);
    await expect(stat(path.join(t.root, 'lander.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
    // The file reopened last got the rest of the run.
    const events = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
    expect(events[0]).toBe('log.reopen');
    expect(events.at(-1)).toBe('daemon.stopped');
  });

  it('a lander killed with SIGKILL leaves its server behind; the next one stops that orphan before starting its own', async () => {
    const t = await setup('orphan');
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const orphan = await whoami(t.port);
    await d.stop('SIGKILL');
    // The server survived its parent.
    expect((await whoami(t.port)).pid).toBe(orphan.pid);

    const d2 = t.start();
    const reaped = await d2.waitFor((r) => r.event === 'server.orphan');
    expect(reaped.serverPid).toBe(orphan.pid);
    await d2.waitFor((r) => r.event === 'server.state' && r.to === 'healthy');
    const now = await whoami(t.port);
    expect(now.pid).not.toBe(orphan.pid);
    // Gone, or a zombie waiting for a PID 1 that does not reap (as in this VM).
    const state = await readFile(`/proc/${orphan.pid}/stat`, 'utf8').then((t) => t.slice(t.lastIndexOf(')') + 2, t.lastIndexOf(')') + 3), () => 'gone');
    expect(['gone', 'Z', 'X']).toContain(state);
  });

  it('SIGTERM while a new server is still starting: exits 0 soon, leaves no server, marks nothing bad', async () => {
    const t = await setup('stop-mid-landing');
    await t.save({ core: '1.0.0' });
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const mark = d.logs().length;
    await t.save({ core: '1.5.0-slow' });
    const spawned = await d.waitFor((r) => r.event === 'server.spawn' && r.generation === 2, { since: mark });
    const t0 = performance.now();
    expectCleanExit(await d.stop('SIGTERM'), d);
    expect(performance.now() - t0).toBeLessThan(10_000);
    // A cancelled start is no verdict on the version: nothing marked bad, no rollback.
    const state = JSON.parse(await readFile(path.join(t.root, 'state.json'), 'utf8'));
    expect(state.bad).toEqual({});
    expect(d.logs().some((r) => r.event === 'rollback')).toBe(false);
    // No server outlives the daemon.
    const alive = await readFile(`/proc/${spawned.serverPid as number}/stat`, 'utf8').then((x) => x.slice(x.lastIndexOf(')') + 2, x.lastIndexOf(')') + 3), () => 'gone');
    expect(['gone', 'Z', 'X']).toContain(alive);
    await expect(fetch(`http://127.0.0.1:${t.port}/health`)).rejects.toThrow();
  });
});
