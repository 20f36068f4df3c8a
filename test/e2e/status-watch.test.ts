/**
 * `lander status --watch` in-process against a real API on a unix socket
 * (stand-in DaemonControl): JSON lines off a terminal, progress bars and
 * event lines at a (simulated) terminal, and nothing from the daemon can
 * drive the terminal with control characters.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiServer } from '../../src/report/api.ts';
import { statusCommand } from '../../src/cli/commands/status.ts';
import { formatDaemonStatus, formatEvent } from '../../src/cli/commands/status-format.ts';
import { silentLogger } from '../../src/report/log.ts';
import { FakeControl } from '../helpers/fake-control.ts';

let root: string;
let cfg: string;
let control: FakeControl;
let api: ApiServer;

function sink(isTTY = false): { stream: NodeJS.WriteStream; text: () => string } {
  const p = new PassThrough();
  let text = '';
  p.setEncoding('utf8');
  p.on('data', (d: string) => (text += d));
  return { stream: Object.assign(p, { isTTY }) as unknown as NodeJS.WriteStream, text: () => text };
}

const until = async (cond: () => boolean, what: string) => {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'lander-watch-'));
  cfg = path.join(root, 'lander.json');
  await writeFile(cfg, JSON.stringify({ root, components: { server: { version: '0.3.1', url: 'http://127.0.0.1:9/s.tar.gz', sha256: 'c'.repeat(64) } } }));
  control = new FakeControl(root);
  api = await startApi({ control, socketPath: path.join(root, 'lander.sock'), log: silentLogger() });
});

afterAll(async () => {
  await api?.close();
  await rm(root, { recursive: true, force: true });
});

describe('lander status --watch', () => {
  it('prints the status, then one JSON line per event with --json, until aborted', async () => {
    const out = sink();
    const err = sink();
    const ac = new AbortController();
    const n = control.listeners.size;
    const done = statusCommand({ configPath: cfg, log: silentLogger(), stdout: out.stream, stderr: err.stream, json: true, watch: true, signal: ac.signal });
    await until(() => control.listeners.size === n + 1, 'subscription');
    control.emit({ type: 'install', component: 'server', version: '0.3.1', status: 'verified' });
    control.emit({ type: 'server.state', from: 'healthy', to: 'stopping', pid: 777 });
    await until(() => out.text().trim().split('\n').at(-1)!.includes('stopping'), 'events');
    ac.abort();
    expect(await done).toBe(0);
    await until(() => control.listeners.size === n, 'unsubscribe after abort');
    const text = out.text();
    const statusEnd = text.indexOf('\n}\n') + 3;
    expect(JSON.parse(text.slice(0, statusEnd))).toEqual(control.statusValue);
    expect(text.slice(statusEnd).trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { type: 'install', component: 'server', version: '0.3.1', status: 'verified' },
      { type: 'server.state', from: 'healthy', to: 'stopping', pid: 777 },
    ]);
  });

  it('draws progress bars and event lines at a terminal', async () => {
    const out = sink(true);
    const ac = new AbortController();
    const n = control.listeners.size;
    const done = statusCommand({ configPath: cfg, log: silentLogger(), stdout: out.stream, stderr: sink().stream, watch: true, tty: out.stream, signal: ac.signal });
    await until(() => control.listeners.size === n + 1, 'subscription');
    control.emit({ type: 'progress', component: 'cuda-libs', version: 'cu128-v2', bytes: 512 * 1024 ** 2, total: 1024 ** 3, downloadedBytes: 512 * 1024 ** 2, rate: 10 * 1024 ** 2, extractedBytes: 0 });
    control.emit({ type: 'landed', generation: 3, from: 2, restarted: true, durationMs: 4200 });
    await until(() => out.text().includes('landed'), 'landed line');
    ac.abort();
    expect(await done).toBe(0);
    await until(() => control.listeners.size === n, 'unsubscribe after abort');
    const text = out.text();
    expect(text).toMatch(/cuda-libs\s+\[#{14}-{14}\]\s+50%\s+512\.0 MiB \/ 1\.0 GiB\s+10\.0 MiB\/s/);
    expect(text).toContain('landed    generation 3 (was 2), server restarted in 4.2 s');
  });

  it('says so and exits 1 when the daemon ends the stream', async () => {
    const p = path.join(root, 'short.sock');
    const a = await startApi({ control, socketPath: p, log: silentLogger() });
    const r2 = await mkdtemp(path.join(os.tmpdir(), 'lander-watch-'));
    const cfg2 = path.join(r2, 'lander.json');
    await writeFile(cfg2, JSON.stringify({ root: r2, api: { socket: p }, components: { server: { version: '1', url: 'http://127.0.0.1:9/s.tar.gz', sha256: 'c'.repeat(64) } } }));
    try {
      const err = sink();
      const n = control.listeners.size;
      const done = statusCommand({ configPath: cfg2, log: silentLogger(), stdout: sink().stream, stderr: err.stream, watch: true, signal: new AbortController().signal });
      await until(() => control.listeners.size === n + 1, 'subscription');
      await a.close();
      expect(await done).toBe(1);
      expect(err.text()).toContain('the daemon closed the event stream');
    } finally {
      await a.close();
      await rm(r2, { recursive: true, force: true });
    }
  });
});

describe('status text', () => {
  it('cannot be made to drive the terminal by what the daemon reports', () => {
    const s = structuredClone(control.statusValue);
    s.components['server']!.desired = '1\x1b[2J\x1b]0;owned\x07';
    s.lastErrors = [{ at: 'now', error: { name: 'Error', code: 'ERR_X', message: 'line1\nline2\r\x9b' } }];
    const text = formatDaemonStatus(s) + formatEvent({ type: 'install', component: 'x\x1b[1A', version: 'v', status: 'failed', error: '\x1b[31mred' });
    expect(text).not.toMatch(/[\x1b\x07\x9b\r]/);
    expect(text).toContain('line1\uFFFDline2');
    expect(text.split('\n').filter((l) => l.includes('line1'))).toHaveLength(1);
  });

  it('shows a restart deferred for the idle gate (waited, bound) and a bad version that is skipped, with how to unmark it', () => {
    const s = structuredClone(control.statusValue);
    s.server.restartDeferred = { generation: 3, since: '2025-01-01T00:00:00.000Z', waitedMs: 42_000, maxDeferralMs: 600_000 };
    s.components['server'] = { desired: '0.3.1', installed: '0.3.0', bad: ['0.3.1'] };
    const text = formatDaemonStatus(s);
    expect(text).toMatch(/^restart {5}onto generation 3 deferred until the server is idle: waited 42 s of at most 600 s$/m);
    expect(text).toMatch(/^server .*skipped: 0\.3\.1 is marked bad \(lander unmark server 0\.3\.1\) {2}bad: 0\.3\.1$/m);
    expect(formatEvent({ type: 'idle-wait', status: 'waiting', generation: 3, maxDeferralMs: 600_000 })).toBe('restart   onto generation 3 deferred until the server is idle (at most 600 s)');
    expect(formatEvent({ type: 'bad', component: 'server', version: '0.3.1', action: 'skipped' })).toBe('bad       server 0.3.1 is marked bad and skipped; lander unmark server 0.3.1 tries it again');
  });
});
