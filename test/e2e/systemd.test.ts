/**
 * lander under systemd: the unit files pass `systemd-analyze verify`, and the
 * notify protocol (READY, STATUS, WATCHDOG, STOPPING) reaches a fake
 * NOTIFY_SOCKET from the real daemon, through the real systemd-notify.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { SystemdNotifier } from '../../src/report/systemd-notify.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';
import { startDaemon } from '../helpers/daemon-proc.ts';
import { listenNotifySocket } from '../helpers/notify-socket.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const has = async (cmd: string) => run('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false);

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-systemd-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function unitKeys(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of text.split('\n')) {
    const kv = /^([A-Za-z]+)=(.*)$/.exec(l.trim());
    if (kv) m.set(kv[1]!, kv[2]!);
  }
  return m;
}

function collect() {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({ write(chunk, _e, cb) { records.push(JSON.parse(String(chunk))); cb(); } });
  return { records, log: pino({ level: 'debug' }, stream) };
}

describe('systemd units', () => {
  it('pass systemd-analyze verify (system and --user) with no warning', async () => {
    expect(await has('systemd-analyze'), 'systemd-analyze is missing: apt-get install -y systemd (.ci/run does)').toBe(true);
    const sys = await run('systemd-analyze', ['verify', path.join(REPO, 'contrib/lander.service')]);
    expect(sys.stdout + sys.stderr).toBe('');
    // A user manager needs a runtime folder; verify only reads the unit.
    const xdg = path.join(work, 'xdg');
    await mkdir(xdg, { mode: 0o700 });
    const user = await run('systemd-analyze', ['--user', 'verify', path.join(REPO, 'contrib/lander-user.service')], { env: { ...process.env, XDG_RUNTIME_DIR: xdg } });
    expect(user.stdout + user.stderr).toBe('');
  });

  it('match what lander does: notify through a child, SIGTERM to lander only, stop time above the server\'s', async () => {
    for (const f of ['lander.service', 'lander-user.service']) {
      const k = unitKeys(await readFile(path.join(REPO, 'contrib', f), 'utf8'));
      expect(k.get('Type')).toBe('notify');
      expect(k.get('NotifyAccess')).toBe('all');
      expect(k.get('KillMode')).toBe('mixed');
      expect(k.get('Restart')).toBe('on-failure');
      expect(k.get('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
      expect(k.get('WatchdogSec')).toBeDefined();
      // server.stop.timeout defaults to 10s, then 5s for SIGKILL to take, then the API's 1s close.
      expect(Number.parseInt(k.get('TimeoutStopSec')!, 10)).toBeGreaterThanOrEqual(30);
    }
    const sys = unitKeys(await readFile(path.join(REPO, 'contrib/lander.service'), 'utf8'));
    expect(sys.get('ProtectSystem')).toBe('strict');
    expect(sys.get('ReadWritePaths')).toBe('/var/lib/lander');
    expect(sys.get('NoNewPrivileges')).toBe('yes');
    expect(sys.get('PrivateTmp')).toBe('yes');
  });
});

describe('SystemdNotifier', () => {
  it('is a silent no-op without NOTIFY_SOCKET', async () => {
    const { records, log } = collect();
    const n = new SystemdNotifier({ log, env: {} });
    expect(n.enabled).toBe(false);
    await n.ready('x');
    n.startWatchdog(() => undefined);
    await n.close();
    expect(records).toEqual([]);
  });

  it('sends READY with MAINPID, STATUS, watchdog pings while healthy, none while not; takes the variables out of the environment', async () => {
    expect(await has('systemd-notify'), 'systemd-notify is missing: apt-get install -y systemd').toBe(true);
    const sock = await listenNotifySocket(await mkdtemp(path.join(work, 'n-')));
    const { records, log } = collect();
    const env: Record<string, string | undefined> = { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid), OTHER: '1' };
    const n = new SystemdNotifier({ log, env });
    expect(env).toEqual({ OTHER: '1' });
    expect(n.watchdogMs).toBe(100);
    try {
      await n.ready('starting');
      await n.status('generation 1 live');
      let problem: { reason: string } | undefined;
      n.startWatchdog(() => problem);
      await expect.poll(() => sock.messages().filter((m) => m.includes('WATCHDOG=1')).length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
      problem = { reason: 'job stuck' };
      await expect.poll(() => records.filter((r) => r.event === 'systemd.watchdog-skipped').length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
      const pings = sock.messages().filter((m) => m.includes('WATCHDOG=1')).length;
      await new Promise((r) => setTimeout(r, 350));
      // At most one in flight when the problem began.
      expect(sock.messages().filter((m) => m.includes('WATCHDOG=1')).length).toBeLessThanOrEqual(pings + 1);
      await n.stopping();
      const msgs = sock.messages().filter((m) => !m.includes('BARRIER=1'));
      expect(msgs[0]).toEqual([`MAINPID=${process.pid}`, 'READY=1', 'STATUS=starting']);
      expect(msgs[1]).toEqual(['STATUS=generation 1 live']);
      expect(msgs.at(-1)).toEqual(['STOPPING=1', 'STATUS=stopping']);
      expect(records.find((r) => r.event === 'systemd.watchdog-skipped')).toMatchObject({ level: 40, reason: 'job stuck' });
    } finally {
      await n.close();
      await sock.close();
    }
  });

  it('a watchdog meant for another pid is not ours; a missing systemd-notify is reported once', async () => {
    const { records, log } = collect();
    const n = new SystemdNotifier({ log, env: { NOTIFY_SOCKET: '/nonexistent/sock', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, command: '/nonexistent/systemd-notify' });
    expect(n.watchdogMs).toBeUndefined();
    await n.ready();
    await n.status('a');
    expect(records.filter((r) => r.event === 'systemd.notify-failed')).toHaveLength(1);
  });
});

describe('lander run under a (fake) systemd', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('says READY once serving, STATUS on landing, pings the watchdog, says STOPPING on SIGTERM; the GPU server does not inherit NOTIFY_SOCKET', async () => {
    const dir = await mkdtemp(path.join(work, 'd-'));
    const core = path.join(dir, 'core');
    await makeCoreTree(core, '1.0.0', { smallFiles: 5 });
    await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', core);
    const cuda = path.join(dir, 'cuda');
    await makeCudaTree(cuda, { libBytes: 64 * 1024, libs: 1 });
    await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', cuda);
    const root = path.join(dir, 'root');
    const configPath = path.join(dir, 'lander.json');
    await writeFile(configPath, JSON.stringify(releaseConfig(server, root, { server: '1.0.0', cuda: 'cu128-v1', appTag: 'libs' }, {
      server: { command: './voicebox-server-cuda', args: ['--port', '0'], health: { logLine: 'listening on', timeout: '10s' }, stop: { timeout: '3s' } },
    })));
    const sock = await listenNotifySocket(dir);
    const d = startDaemon(configPath, { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '300000', LANDER_LOG_LEVEL: 'debug' });
    try {
      await d.waitFor((r) => r.event === 'generation.landed');
      const spawn = await d.waitFor((r) => r.event === 'server.spawn');
      await expect.poll(() => sock.messages().some((m) => m.includes('READY=1')), { timeout: 10_000 }).toBe(true);
      const ready = sock.messages().find((m) => m.includes('READY=1'))!;
      expect(ready, JSON.stringify(sock.messages())).toContain(`MAINPID=${d.child.pid}`);
      await expect.poll(() => sock.messages().filter((m) => m.includes('WATCHDOG=1')).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      // STATUS=landed; generation 1 (cuda-libs cu128-v1, server 1.0.0), server healthy (component order may vary).
      const landedStatus = () => sock.messages().flat().some((l) => l.startsWith('STATUS=') && /generation 1 \(/.test(l) && l.includes('server 1.0.0') && l.includes('cuda-libs cu128-v1'));
      await expect.poll(landedStatus, { timeout: 10_000 }).toBe(true).catch(() => undefined);
      const statusLines = sock.messages().flat().filter((l) => l.startsWith('STATUS='));
      const notifyLogs = d.logs().filter((r) => String(r.event).startsWith('systemd.') || r.event === 'generation.landed').map((r) => JSON.stringify(r)).join('\n');
      expect(statusLines.some((l) => /generation 1 \(/.test(l) && l.includes('server 1.0.0') && l.includes('cuda-libs cu128-v1')), `${statusLines.join('\n')}\n${notifyLogs}`).toBe(true);
      // The launcher execs node: /proc/<pid>/environ is the server's own environment.
      const environ = await readFile(`/proc/${spawn.serverPid as number}/environ`, 'utf8');
      expect(environ.split('\0').filter((v) => /^(NOTIFY_SOCKET|WATCHDOG_USEC)=/.test(v))).toEqual([]);
      await d.stop('SIGTERM');
      expect(sock.messages().filter((m) => !m.includes('BARRIER=1')).at(-1)).toEqual(['STOPPING=1', 'STATUS=stopping']);
      expect(d.logs().filter((r) => r.event === 'systemd.notify-failed')).toEqual([]);
    } finally {
      await d.stop('SIGTERM');
      await sock.close();
    }
  });
});
