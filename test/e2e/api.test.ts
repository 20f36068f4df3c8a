/**
 * The status API over real transports: a unix socket in a temp folder and
 * 127.0.0.1:0, driven by a stand-in DaemonControl; and the real `lander`
 * CLI talking to it (or to nothing).
 */
import { spawn } from 'node:child_process';
import { chmod, lstat, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/api-client.ts';
import { startApi, type ApiServer } from '../../src/report/api.ts';
import { verifySocket } from '../../src/report/api-socket.ts';
import type { DaemonEvent } from '../../src/report/daemon-model.ts';
import { LanderError } from '../../src/base/errors.ts';
import { silentLogger } from '../../src/report/log.ts';
import { scriptCommand } from '../../src/base/runtime.ts';
import { FakeControl, noRollback } from '../helpers/fake-control.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';
import { collect, connect, request } from '../helpers/raw-http.ts';

const TOKEN = 'test-token-0123456789abcdef';
const HEADERS_TIMEOUT = 800;
const PING_MS = 150;
const SSE_CAP = 32 * 1024;

let dir: string;
let control: FakeControl;
let api: ApiServer;
let sock: { socketPath: string };
let tcp: { port: number };

const waitFor = async (cond: () => boolean, ms = 5000, what = 'condition') => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const progress = (i: number): DaemonEvent => ({ type: 'progress', component: 'cuda-libs', version: 'cu128-v2', bytes: i * 1000, total: 1e9, downloadedBytes: i * 1000, rate: 1e6, extractedBytes: i * 900 });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'lander-api-'));
  control = new FakeControl(dir);
  api = await startApi({
    control,
    socketPath: path.join(dir, 'lander.sock'),
    tcp: { host: '127.0.0.1', port: 0, token: TOKEN },
    log: silentLogger(),
    headersTimeoutMs: HEADERS_TIMEOUT,
    requestTimeoutMs: 2000,
    ssePingIntervalMs: PING_MS,
    sseMaxBufferedBytes: SSE_CAP,
  });
  sock = { socketPath: api.socketPath };
  tcp = { port: api.tcpPort! };
});

afterAll(async () => {
  await api?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('status API on a unix socket', () => {
  it('serves GET /status as JSON, without a token', async () => {
    const r = await request(sock, 'GET', '/status');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.json()).toEqual(control.statusValue);
  });

  it('creates the socket with mode 0600, owned by the daemon\'s user', async () => {
    const st = await lstat(api.socketPath);
    expect(st.isSocket()).toBe(true);
    expect((st.mode & 0o777).toString(8)).toBe('600');
    expect(st.uid).toBe(process.getuid!());
    expect(st.gid).toBe(process.getgid!());
  });

  it('refuses to use a socket file anyone else could reach (mode 0666)', async () => {
    const p = path.join(dir, 'open.sock');
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(p, r));
    try {
      await chmod(p, 0o666);
      await expect(verifySocket(p)).rejects.toMatchObject({ code: 'ERR_API_SOCKET', message: expect.stringMatching(/expected a socket with mode 0600 owned by uid \d+, found a socket with mode 0666/) });
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('answers oversized headers 431 and garbage 400 without harming the next request', async () => {
    for (const [raw, status] of [[`GET /status HTTP/1.1\r\nHost: lander\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431], ['NOT HTTP AT ALL\r\n\r\n', 400]] as const) {
      const s = await connect(sock);
      const got = collect(s);
      s.write(raw);
      expect((await got).text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    }
    expect((await request(sock, 'GET', '/status')).status).toBe(200);
  });

  it('answers unknown routes 404 and wrong methods 405, as JSON', async () => {
    const nf = await request(sock, 'GET', '/nope?x=1');
    expect(nf.status).toBe(404);
    expect(nf.json().error.code).toBe('ERR_NOT_FOUND');
    const m1 = await request(sock, 'GET', '/rollback');
    expect(m1.status).toBe(405);
    expect(m1.headers.allow).toBe('POST');
    expect(m1.json().error.code).toBe('ERR_METHOD_NOT_ALLOWED');
    const m2 = await request(sock, 'DELETE', '/status');
    expect(m2.status).toBe(405);
    expect(m2.headers.allow).toBe('GET');
    expect(control.calls).not.toContain('rollback');
  });

  it('runs the actions: 202 for check, 200 for restart and rollback, 409/500 errors as JSON', async () => {
    expect((await request(sock, 'POST', '/check')).status).toBe(202);
    const r = await request(sock, 'POST', '/restart');
    expect([r.status, r.json()]).toEqual([200, { pid: 778, generation: 2 }]);
    expect((await request(sock, 'POST', '/rollback')).json()).toEqual({ from: 2, to: 1 });
    control.fail.rollback = noRollback();
    control.fail.restart = new Error('boom');
    try {
      const c = await request(sock, 'POST', '/rollback');
      expect(c.status).toBe(409);
      expect(c.json()).toEqual({ error: { code: 'ERR_NO_ROLLBACK', message: 'Cannot roll back: there is no earlier good generation' } });
      const e = await request(sock, 'POST', '/restart');
      expect(e.status).toBe(500);
      expect(e.json().error).toEqual({ code: 'ERR_UNEXPECTED', message: 'boom' });
    } finally {
      control.fail = {};
    }
  });

  it('serves /metrics as Prometheus text that parses, the API\'s own counters included', async () => {
    const r = await request(sock, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const fams = parsePromText(r.body);
    expect(sampleValue(fams, 'lander_component_info', { component: 'server', version: '0.3.0' })).toBe(1);
    expect(sampleValue(fams, 'lander_current_generation')).toBe(2);
    expect(sampleValue(fams, 'lander_api_requests_total', { code: '200' })).toBeGreaterThan(0);
  });

  it('answers a 1 MB body with 413, closes that connection, and serves the next request', async () => {
    for (const framing of ['length', 'chunked'] as const) {
      const s = await connect(sock);
      const got = collect(s);
      const body = Buffer.alloc(1024 * 1024, 0x61);
      if (framing === 'length') s.write(`POST /check HTTP/1.1\r\nHost: lander\r\nContent-Length: ${body.length}\r\n\r\n`);
      else s.write(`POST /check HTTP/1.1\r\nHost: lander\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`);
      s.write(body);
      s.write(framing === 'chunked' ? '\r\n0\r\n\r\n' : '');
      const r = await got;
      expect(r.text, framing).toMatch(/^HTTP\/1\.1 413 /);
      expect(r.text).toMatch(/connection: close/i);
      expect(r.text).toContain('"ERR_BODY_TOO_LARGE"');
    }
    expect(control.calls.filter((c) => c === 'check')).toHaveLength(1); // only the earlier test's
    expect((await request(sock, 'GET', '/status')).status).toBe(200);
  });

  it('cuts a slow-loris client after the headers timeout without blocking others', async () => {
    const loris = await connect(sock);
    const cut = collect(loris);
    loris.write('GET /status HTTP/1.1\r\nHost: lan');
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) expect((await request(sock, 'GET', '/status')).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(HEADERS_TIMEOUT);
    const r = await cut;
    expect(r.ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 100);
    expect(r.ms).toBeLessThan(HEADERS_TIMEOUT + 2000);
    expect(r.text).not.toContain('200 OK');
  });

  it('streams events as SSE, pings, and unsubscribes when the client goes', async () => {
    const before = control.listeners.size;
    const s = await connect(sock);
    const raw = collect(s);
    s.write('GET /events HTTP/1.1\r\nHost: lander\r\n\r\n');
    await waitFor(() => control.listeners.size === before + 1, 5000, 'subscription');
    control.emit({ type: 'install', component: 'server', version: '0.3.1', status: 'verified' });
    control.emit({ type: 'landed', generation: 3, from: 2, restarted: true, durationMs: 1200 });
    await new Promise((r) => setTimeout(r, PING_MS * 2.5));
    s.end();
    s.destroySoon();
    const { text } = await raw;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toMatch(/content-type: text\/event-stream/i);
    expect(text).toContain('event: install\ndata: {"type":"install","component":"server","version":"0.3.1","status":"verified"}\n\n');
    expect(text).toContain('event: landed\ndata: {"type":"landed"');
    expect(text).toContain(': ping\n\n');
    await waitFor(() => control.listeners.size === before, 5000, 'unsubscribe');
  });

  it('delivers events to ApiClient.events in order until aborted', async () => {
    const client = new ApiClient(sock);
    const got: DaemonEvent[] = [];
    const ac = new AbortController();
    const before = control.listeners.size;
    const done = client.events((e) => got.push(e), ac.signal);
    await waitFor(() => control.listeners.size === before + 1, 5000, 'subscription');
    const sent: DaemonEvent[] = [progress(1), { type: 'config', status: 'invalid', issues: [{ path: 'components.server.version', message: 'bad "x"\nnewline' }] }, { type: 'rollback', from: 3, to: 2, reason: 'crash loop', bad: { server: '0.3.1' } }];
    for (const e of sent) control.emit(e);
    await waitFor(() => got.length === sent.length, 5000, 'events');
    ac.abort();
    await done;
    expect(got).toEqual(sent);
    await waitFor(() => control.listeners.size === before, 5000, 'unsubscribe');
  });

  it('keeps an event stream open past the request timeout, and caps the number of streams', async () => {
    const p = path.join(dir, 'streams.sock');
    const a = await startApi({ control, socketPath: p, log: silentLogger(), headersTimeoutMs: 300, requestTimeoutMs: 500, maxEventStreams: 1, ssePingIntervalMs: 100 });
    const ac = new AbortController();
    const got: DaemonEvent[] = [];
    try {
      const done = new ApiClient({ socketPath: p }).events((e) => got.push(e), ac.signal);
      await waitFor(() => a.stats().eventStreams === 1, 5000, 'stream');
      const second = await request({ socketPath: p }, 'GET', '/events');
      expect(second.status).toBe(503);
      expect(second.json().error.code).toBe('ERR_TOO_MANY_STREAMS');
      await new Promise((r) => setTimeout(r, 1500));
      control.emit({ type: 'config', status: 'loaded' });
      await waitFor(() => got.length === 1, 5000, 'event after the timeouts');
      ac.abort();
      await done;
    } finally {
      await a.close();
    }
  });

  it('does not buffer without bound for an SSE client that never reads', async () => {
    for (const ending of ['state event', 'pings'] as const) {
      const before = api.stats();
      const s = await connect(sock);
      s.pause(); // never read: the kernel buffers fill, then the server's
      s.write('GET /events HTTP/1.1\r\nHost: lander\r\n\r\n');
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => undefined);
      await waitFor(() => api.stats().eventStreams === before.eventStreams + 1, 5000, 'stream open');
      // ~20 MB of progress: far more than socket buffers plus the cap.
      for (let i = 0; i < 100_000; i++) control.emit(progress(i));
      const mid = api.stats();
      expect(mid.droppedEvents - before.droppedEvents, ending).toBeGreaterThan(50_000);
      expect(mid.eventStreams).toBe(before.eventStreams + 1);
      // A landed event cannot be dropped: the stream closes. Progress alone: closed at the second ping still over the cap.
      let i = 0;
      const more = ending === 'pings' ? setInterval(() => { for (let k = 0; k < 2000; k++) control.emit(progress(i++)); }, 20) : undefined;
      if (ending === 'state event') control.emit({ type: 'landed', generation: 4, from: 3, restarted: true, durationMs: 1 });
      await waitFor(() => api.stats().slowClosed === before.slowClosed + 1, 5000, `slow close (${ending}) ${JSON.stringify(api.stats())}`);
      clearInterval(more);
      await waitFor(() => api.stats().eventStreams === before.eventStreams, 5000, 'stream gone');
      s.resume();
      await closed;
    }
    const fams = parsePromText((await request(sock, 'GET', '/metrics')).body);
    expect(sampleValue(fams, 'lander_api_event_streams_closed_slow_total')).toBe(2);
    expect(sampleValue(fams, 'lander_api_events_dropped_total')).toBeGreaterThan(100_000);
  });

  // Latency is a benchmark's job (bench/daemon-load.ts: /status p50/p99 under an install), not a timed assertion here.
  it('answers 200 sequential /status requests over the socket, each a complete status', async () => {
    const client = new ApiClient(sock);
    for (let i = 0; i < 200; i++) {
      const st = (await client.getJson('/status')) as { pid: number; components: Record<string, unknown> };
      expect(st.pid).toBe(4242);
      expect(typeof st.components).toBe('object');
    }
  });
});

describe('status API on loopback TCP', () => {
  it('needs the bearer token: none or wrong is 401, right is 200', async () => {
    const none = await request(tcp, 'GET', '/status');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(none.json().error.code).toBe('ERR_UNAUTHORIZED');
    for (const auth of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
      expect((await request(tcp, 'GET', '/status', { headers: { authorization: auth } })).status, auth).toBe(401);
    }
    const ok = await request(tcp, 'GET', '/status', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(ok.json().pid).toBe(4242);
    expect((await request(tcp, 'POST', '/check', { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(202);
  });

  it('refuses an unauthenticated action before running it', async () => {
    const n = control.calls.length;
    expect((await request(tcp, 'POST', '/rollback', { body: 'x'.repeat(100) })).status).toBe(401);
    expect(control.calls.length).toBe(n);
  });

  it('works through ApiClient with the token', async () => {
    const client = new ApiClient({ tcp: { host: '127.0.0.1', port: tcp.port, token: TOKEN } });
    expect((await client.getJson<{ pid: number }>('/status')).pid).toBe(4242);
    const bad = new ApiClient({ tcp: { host: '127.0.0.1', port: tcp.port, token: 'wrong-token-wrong-token' } });
    await expect(bad.getJson('/status')).rejects.toMatchObject({ code: 'ERR_UNAUTHORIZED', data: { status: 401 } });
  });

  it('refuses to listen on a non-loopback address', async () => {
    const p = path.join(dir, 'other.sock');
    await expect(startApi({ control, socketPath: p, tcp: { host: '0.0.0.0', port: 0, token: TOKEN }, log: silentLogger() })).rejects.toMatchObject({ code: 'ERR_API_NOT_LOOPBACK' });
    await expect(lstat(p)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('socket file handling', () => {
  it('replaces a stale socket, refuses a live one and a non-socket file', async () => {
    const p = path.join(dir, 'stale.sock');
    // A process that listens and dies by SIGKILL leaves its socket file behind.
    const script = path.join(dir, 'listen.mjs');
    await writeFile(script, `import net from 'node:net'; net.createServer().listen(process.argv.at(-1), () => console.log('ready'));`);
    const { command, args } = scriptCommand(script, [p]);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    await expect(startApi({ control, socketPath: p, log: silentLogger() })).rejects.toMatchObject({ code: 'ERR_API_IN_USE' });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect((await lstat(p)).isSocket()).toBe(true);
    const a = await startApi({ control, socketPath: p, log: silentLogger() });
    expect((await request({ socketPath: p }, 'GET', '/status')).status).toBe(200);
    await a.close();
    await expect(lstat(p)).rejects.toMatchObject({ code: 'ENOENT' });

    const f = path.join(dir, 'not-a-socket');
    await writeFile(f, 'precious');
    await expect(startApi({ control, socketPath: f, log: silentLogger() })).rejects.toMatchObject({ code: 'ERR_API_SOCKET' });
    expect(await readFile(f, 'utf8')).toBe('precious');
  });

  it('ends event streams and removes the socket on close', async () => {
    const p = path.join(dir, 'closing.sock');
    const a = await startApi({ control, socketPath: p, log: silentLogger() });
    const ac = new AbortController();
    const done = new ApiClient({ socketPath: p }).events(() => undefined, ac.signal);
    await waitFor(() => a.stats().eventStreams === 1, 5000, 'stream');
    await a.close();
    await done; // the stream ended cleanly
    await expect(lstat(p)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports ERR_NO_DAEMON from the client when nothing listens', async () => {
    const client = new ApiClient({ socketPath: path.join(dir, 'absent.sock'), root: dir, configPath: '/etc/x.json' });
    const err = await client.getJson('/status').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LanderError);
    expect(err).toMatchObject({ code: 'ERR_NO_DAEMON', message: `No lander daemon is running for ${dir} (no socket at ${dir}/absent.sock); start it with "lander run --config /etc/x.json"` });
  });
});

describe('lander CLI over the API', () => {
  async function writeConfig(root: string): Promise<string> {
    const f = path.join(root, 'lander.json');
    await writeFile(f, JSON.stringify({ root, components: { server: { version: '0.3.1', url: 'http://127.0.0.1:9/server-{version}.tar.gz', sha256: 'b'.repeat(64) } } }));
    return f;
  }

  it('check with no daemon: exit 3 and a plain message on stderr', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'lander-cli-'));
    try {
      const cfg = await writeConfig(root);
      const r = await runLander(['check', '--config', cfg]);
      expect(r.code).toBe(3);
      expect(r.stderr).toBe(`No lander daemon is running for ${root} (no socket at ${root}/lander.sock); start it with "lander run --config ${cfg}"\n`);
      expect(r.stdout).toBe('');
      const s = await runLander(['status', '--config', cfg]);
      expect(s.code).toBe(3);
      expect(s.stdout.split('\n')[0]).toBe(`The lander daemon is not running (no socket at ${root}/lander.sock); showing the store on disk.`);
      expect(s.stdout).toContain('server');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('status, rollback and a refused rollback against a running API', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'lander-cli-'));
    const a = await startApi({ control, socketPath: path.join(root, 'lander.sock'), log: silentLogger() });
    try {
      const cfg = await writeConfig(root);
      const s = await runLander(['status', '--json', '--config', cfg]);
      expect(s.code).toBe(0);
      expect(JSON.parse(s.stdout)).toEqual(control.statusValue);
      const h = await runLander(['status', '--config', cfg]);
      expect(h.stdout).toMatch(/^server\s+healthy, pid 777, generation 2/m);
      expect(h.stdout).toMatch(/^server\s+0\.3\.1\s+0\.3\.0\s+download 0\.3\.1 25%/m);
      expect(h.code).toBe(0);
      const healthy = control.healthValue;
      control.healthValue = { ok: false, checks: { ...healthy.checks, server: { ok: false, state: 'failed', detail: 'the server is failed' } } };
      const sick = await runLander(['status', '--config', cfg]);
      expect([sick.code, sick.stderr]).toEqual([1, 'lander is not healthy: server: the server is failed\n']);
      const hz = await request({ socketPath: path.join(root, 'lander.sock') }, 'GET', '/healthz');
      expect([hz.status, hz.json().ok]).toEqual([503, false]);
      control.healthValue = healthy;
      const rb = await runLander(['rollback', '--config', cfg]);
      expect([rb.code, rb.stdout]).toEqual([0, 'rolled back: generation 2 -> 1\n']);
      control.fail.rollback = noRollback();
      const no = await runLander(['rollback', '--config', cfg]);
      expect(no.code).toBe(1);
      expect(no.stderr).toBe('lander rollback: Cannot roll back: there is no earlier good generation (ERR_NO_ROLLBACK)\n');
    } finally {
      control.fail = {};
      await a.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
