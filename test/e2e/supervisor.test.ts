/**
 * The supervisor against real child processes of the stand-in server.
 * Timings are asserted as relations and generous bounds: the machine is noisy.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerConfig } from '../../src/config/schema.ts';
import { hasCode } from '../../src/base/errors.ts';
import { httpProbe } from '../../src/supervise/probe.ts';
import { waitForIdle } from '../../src/supervise/idle-gate.ts';
import { createLogger } from '../../src/report/log.ts';
import { scriptCommand } from '../../src/base/runtime.ts';
import { Supervisor, type ExitInfo, type ServerState } from '../../src/supervise/supervisor.ts';
import { freePort } from '../helpers/free-port.ts';
import { gone } from '../helpers/process-gone.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/stand-in-server.mjs', import.meta.url));

type Rec = Record<string, any>;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});


function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lander-sup-'));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A generation folder holding a copy of the stand-in, as an installed server core would. */
function generation(root: string, n: number): string {
  const dir = path.join(root, 'generations', String(n));
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(FIXTURE, path.join(dir, 'stand-in-server.mjs'));
  return dir;
}

function collector() {
  const records: Rec[] = [];
  // _t: when the record reached us, for measurements.
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void records.push({ ...JSON.parse(s), _t: performance.now() }) } });
  return { log, records };
}

/** A complete ServerConfig (zod output type) running the stand-in from the generation's folder. */
function serverConfig(port: number, extraArgs: string[] = [], over: Partial<ServerConfig> = {}): ServerConfig {
  // A relative script path: it only resolves when the child's cwd is the generation folder.
  const cmd = scriptCommand('./stand-in-server.mjs', ['--port', String(port), ...extraArgs]);
  return {
    command: cmd.command,
    args: cmd.args,
    env: {},
    health: { url: `http://127.0.0.1:${port}/health`, status: 200, json: { status: 'healthy' }, interval: 100, livenessInterval: 100, timeout: 15_000, probeTimeout: 1000 },
    stop: { signal: 'SIGTERM', timeout: 3000 },
    restart: { when: 'immediate', initialDelay: 100, factor: 2, maxDelay: 1000, resetAfter: 60_000, crashLoopExits: 100, window: 120_000 },
    ...over,
  };
}

function supervisor(server: ServerConfig) {
  const { log, records } = collector();
  const sup = new Supervisor({ server, log });
  const states: Array<{ to: ServerState; t: number }> = [];
  const exits: Array<ExitInfo & { t: number }> = [];
  sup.on('state', (c) => states.push({ to: c.to, t: performance.now() }));
  sup.on('exit', (e) => exits.push({ ...e, t: performance.now() }));
  cleanups.push(() => sup.stop());
  return { sup, records, states, exits };
}

async function getJson(url: string): Promise<any> {
  const r = await httpProbe({ url, json: {}, timeoutMs: 2000 });
  expect(r.ok, r.reason).toBe(true);
  return r.body;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Supervisor (real child processes)', () => {
  it('starts healthy with cwd = the real path of a symlinked generation', async () => {
    const root = tmpDir();
    const gen = generation(root, 1);
    fs.symlinkSync(gen, path.join(root, 'current'));
    const port = await freePort();
    const { sup, records } = supervisor(serverConfig(port));
    const t0 = performance.now();
    await sup.start(path.join(root, 'current'), 1);
    const startMs = performance.now() - t0;
    expect(sup.state).toBe('healthy');
    const who = await getJson(`http://127.0.0.1:${port}/cwd`);
    expect(who.cwd).toBe(fs.realpathSync(gen));
    expect(who.pid).toBe(sup.pid);
    expect(sup.info()).toMatchObject({ state: 'healthy', pid: who.pid, generation: 1, restarts: 0 });
    const healthy = records.find((r) => r.event === 'server.state' && r.to === 'healthy')!;
    // lander's share: start() → spawned, plus "listening" line received → healthy; the rest is the stand-in booting.
    const spawned = records.find((r) => r.event === 'server.spawn')!;
    const listening = records.find((r) => r.event === 'server.output' && /^listening on/.test(r.line))!;
    console.log(`[measure] start()→healthy ${startMs.toFixed(0)} ms; start()→spawned ${(spawned._t - t0).toFixed(0)} ms; spawned→"listening" line ${(listening._t - spawned._t).toFixed(0)} ms (stand-in's own ready_ms ${who.readyMs}); "listening"→healthy ${(healthy._t - listening._t).toFixed(0)} ms; probes ${healthy.probes}`);
    expect(records.map((r) => r.event === 'server.state' && `${r.from}>${r.to}`).filter(Boolean)).toEqual(['stopped>starting', 'starting>healthy']);
    await until(() => records.some((r) => r.event === 'server.output' && r.stream === 'stderr' && r.line === 'stderr hello'), 5000, 'stderr line');
    expect(records.find((r) => r.event === 'server.output' && /^listening on/.test(r.line))).toMatchObject({ src: 'server', stream: 'stdout' });
    const pid = sup.pid!;
    await sup.stop();
    expect(sup.state).toBe('stopped');
    expect(gone(pid)).toBe(true);
    const exit = records.find((r) => r.event === 'server.exit')!;
    expect(exit).toMatchObject({ serverPid: pid, expected: true, clean: true, forced: false });
    expect(exit.uptimeMs).toBeGreaterThan(0);
  });

  it('restarts on a new generation: new pid, new cwd, old process gone', async () => {
    const root = tmpDir();
    const port = await freePort();
    const { sup } = supervisor(serverConfig(port));
    await sup.start(generation(root, 1), 1);
    const first = await getJson(`http://127.0.0.1:${port}/cwd`);
    await sup.restartOn(generation(root, 2), 2);
    const second = await getJson(`http://127.0.0.1:${port}/cwd`);
    expect(second.pid).not.toBe(first.pid);
    expect(second.cwd).toBe(fs.realpathSync(path.join(root, 'generations', '2')));
    expect(sup.info()).toMatchObject({ state: 'healthy', generation: 2, pid: second.pid });
    expect(gone(first.pid)).toBe(true);
  });

  it('rejects with ERR_SERVER_UNHEALTHY when never healthy, and leaves nothing running', async () => {
    const root = tmpDir();
    const port = await freePort();
    const cfg = serverConfig(port, ['--never-healthy']);
    cfg.health!.timeout = 800;
    const { sup, exits } = supervisor(cfg);
    const t0 = performance.now();
    const err = await sup.start(generation(root, 1), 1).catch((e) => e);
    expect(hasCode(err, 'ERR_SERVER_UNHEALTHY')).toBe(true);
    expect(err.message).toMatch(/did not become healthy within 800 ms.*status 503/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(790);
    expect(sup.state).toBe('failed');
    expect(sup.info().lastError).toMatch(/healthy/);
    expect(exits).toHaveLength(1);
    expect(gone(exits[0]!.pid)).toBe(true);
  });

  it('rejects with ERR_SERVER_EXITED when the server dies during start', async () => {
    const root = tmpDir();
    const port = await freePort();
    const { sup } = supervisor(serverConfig(port, ['--never-healthy', '--exit-after-ms', '100', '--exit-code', '7']));
    const err = await sup.start(generation(root, 1), 1).catch((e) => e);
    expect(hasCode(err, 'ERR_SERVER_EXITED')).toBe(true);
    expect(err.data).toMatchObject({ code: 7 });
    expect(sup.state).toBe('failed');
  });

  it('refuses a second start while starting; stop() during start aborts it and leaves nothing', async () => {
    const root = tmpDir();
    const port = await freePort();
    const { sup, exits } = supervisor(serverConfig(port, ['--start-delay-ms', '5000']));
    const first = sup.start(generation(root, 1), 1);
    first.catch(() => {}); // asserted below
    await expect(sup.start(generation(root, 2), 2)).rejects.toMatchObject({ code: 'ERR_SERVER_BUSY' });
    await until(() => sup.pid !== undefined, 5000, 'spawn');
    const pid = sup.pid!;
    await sup.stop();
    await expect(first).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(sup.state).toBe('stopped');
    expect(exits).toMatchObject([{ pid, expected: true, clean: true }]);
    expect(gone(pid)).toBe(true);
  });

  it('rejects with ERR_SERVER_SPAWN for a missing command', async () => {
    const root = tmpDir();
    const { sup } = supervisor({ ...serverConfig(1), command: './no-such-server' });
    const err = await sup.start(generation(root, 1), 1).catch((e) => e);
    expect(hasCode(err, 'ERR_SERVER_SPAWN')).toBe(true);
    expect(sup.state).toBe('failed');
  });

  it('SIGKILLs a server that ignores SIGTERM after the stop timeout, grandchild included', async () => {
    const root = tmpDir();
    const port = await freePort();
    const gcFile = path.join(root, 'grandchild.pid');
    const cfg = serverConfig(port, ['--ignore-sigterm', '--grandchild-pid-file', gcFile]);
    cfg.stop.timeout = 700;
    const { sup, records } = supervisor(cfg);
    await sup.start(generation(root, 1), 1);
    await until(() => fs.existsSync(gcFile) && fs.readFileSync(gcFile, 'utf8') !== '', 5000, 'grandchild pid');
    const gc = Number(fs.readFileSync(gcFile, 'utf8'));
    const pid = sup.pid!;
    expect(gone(gc)).toBe(false);
    const t0 = performance.now();
    await sup.stop();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(690);
    expect(records.find((r) => r.event === 'server.exit')).toMatchObject({ serverPid: pid, forced: true, clean: false, signal: 'SIGKILL' });
    expect(records.some((r) => r.event === 'server.output' && r.line === 'SIGTERM ignored')).toBe(true);
    await until(() => gone(gc) && gone(pid), 2000, 'grandchild and server gone');
  });

  it('kills a grandchild left behind when the server exits cleanly on SIGTERM', async () => {
    const root = tmpDir();
    const port = await freePort();
    const gcFile = path.join(root, 'grandchild.pid');
    const { sup, records } = supervisor(serverConfig(port, ['--grandchild-pid-file', gcFile]));
    await sup.start(generation(root, 1), 1);
    await until(() => fs.existsSync(gcFile) && fs.readFileSync(gcFile, 'utf8') !== '', 5000, 'grandchild pid');
    const gc = Number(fs.readFileSync(gcFile, 'utf8'));
    await sup.stop();
    expect(records.find((r) => r.event === 'server.exit')).toMatchObject({ clean: true, forced: false });
    expect(records.some((r) => r.event === 'server.leftovers')).toBe(true);
    await until(() => gone(gc), 2000, 'grandchild gone');
  });

  it('backs off with growing, capped delays, and a stable run resets them', async () => {
    const root = tmpDir();
    const port = await freePort();
    // Runs 1-4 crash after 300 ms (run 1 after 1000: start() waits for it to be seen healthy, see below),
    // run 5 is "stable" (5000 ms > resetAfter), run 6 crashes, run 7 stays.
    // resetAfter sits far above a crash run's uptime (start-up + 300 ms), which a loaded machine stretches.
    const runLog = path.join(root, 'runs.log');
    const cfg = serverConfig(port, ['--run-log', runLog, '--exit-schedule', '1000,300,300,300,5000,300,-']);
    cfg.restart = { ...cfg.restart, initialDelay: 100, factor: 2, maxDelay: 400, resetAfter: 4000 };
    const { sup, records, states, exits } = supervisor(cfg);
    await sup.start(generation(root, 1), 1);
    await until(() => exits.length >= 6 && sup.state === 'healthy', 45_000, 'six crashes and a healthy seventh run');
    const delays = records.filter((r) => r.event === 'server.state' && r.to === 'backoff').map((r) => r.delayMs);
    expect(delays).toEqual([100, 200, 400, 400, 100, 200]);
    // Measured: exit → next 'starting'. Never shorter than asked, and in the same order.
    const gaps = exits.map((e) => states.find((s) => s.to === 'starting' && s.t > e.t)!.t - e.t);
    gaps.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(delays[i]! - 5));
    expect(gaps[1]!).toBeGreaterThan(gaps[0]!);
    expect(gaps[2]!).toBeGreaterThan(gaps[1]!);
    expect(gaps[4]!).toBeLessThan(gaps[3]!);
    expect(exits.every((e) => !e.expected && !e.clean && e.code === 1)).toBe(true);
    expect(sup.info().restarts).toBe(6);
  });

  it('goes to failed and emits crash-loop after N exits in the window', async () => {
    const root = tmpDir();
    const port = await freePort();
    // The first run must be seen healthy before it exits (start() resolves only then): the stand-in's timer
    // counts from its own process start, and a loaded CI machine once took over 250 ms to get it listening and probed.
    const cfg = serverConfig(port, ['--exit-after-ms', '1000', '--exit-code', '3']);
    cfg.restart = { ...cfg.restart, initialDelay: 50, crashLoopExits: 3, window: 30_000 };
    const { sup, exits } = supervisor(cfg);
    const loop = new Promise<any>((r) => sup.once('crash-loop', r));
    await sup.start(generation(root, 1), 1);
    const ev = await loop;
    expect(ev).toMatchObject({ generation: 1, exitsInWindow: 3, lastExit: { code: 3 } });
    expect(sup.state).toBe('failed');
    expect(sup.pid).toBeUndefined();
    expect(exits).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 300));
    expect(exits).toHaveLength(3); // no restart scheduled after failed
    expect(exits.every((e) => gone(e.pid))).toBe(true);
  });

  it('turns unhealthy after failed liveness probes, without restarting', async () => {
    const root = tmpDir();
    const port = await freePort();
    const { sup, records, exits } = supervisor(serverConfig(port, ['--unhealthy-after-ms', '600']));
    await sup.start(generation(root, 1), 1);
    const pid = sup.pid;
    await until(() => sup.state === 'unhealthy', 5000, 'unhealthy');
    expect(records.find((r) => r.event === 'server.state' && r.to === 'unhealthy')).toMatchObject({ from: 'healthy', failures: 3, reason: expect.stringMatching(/503/) });
    expect(sup.pid).toBe(pid);
    expect(exits).toHaveLength(0);
  });

  it('idle gate: waits for idle, and gives up at maxDeferral', async () => {
    const root = tmpDir();
    const port = await freePort();
    const idleFile = path.join(root, 'idle');
    const { sup } = supervisor(serverConfig(port, ['--idle-file', idleFile]));
    await sup.start(generation(root, 1), 1);
    const cfg = { url: `http://127.0.0.1:${port}/idle`, status: 200, json: { idle: true }, interval: 50, maxDeferral: 5000 };
    const t = setTimeout(() => fs.writeFileSync(idleFile, ''), 400);
    const r1 = await waitForIdle(cfg);
    clearTimeout(t);
    expect(r1.idle).toBe(true);
    expect(r1.waitedMs).toBeGreaterThanOrEqual(350);
    expect(r1.waitedMs).toBeLessThan(5000);
    fs.rmSync(idleFile);
    const r2 = await waitForIdle({ ...cfg, maxDeferral: 500 });
    expect(r2.idle).toBe(false);
    expect(r2.waitedMs).toBeGreaterThanOrEqual(495);
    expect(r2.waitedMs).toBeLessThan(2500);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await expect(waitForIdle({ ...cfg, maxDeferral: 10_000 }, { signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('a stdout flood and a 1 MB line do not block the event loop and are logged truncated', async () => {
    const root = tmpDir();
    const port = await freePort();
    const { sup, records } = supervisor(serverConfig(port, ['--long-line-bytes', String(1024 * 1024), '--flood-lines', '300000']));
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 10);
    cleanups.push(() => clearInterval(timer));
    await sup.start(generation(root, 1), 1);
    const t0 = performance.now();
    await until(() => records.some((r) => r.event === 'server.output-dropped') || records.some((r) => r.line === 'flood done'), 60_000, 'end of flood');
    await until(() => !sup.pid || records.filter((r) => r.event === 'server.output').length > 100, 1000, 'output');
    console.log(`[measure] flood: ${(performance.now() - t0).toFixed(0)} ms, max timer gap ${maxGap.toFixed(0)} ms, ${records.filter((r) => r.event === 'server.output').length} lines logged`);
    const long = records.find((r) => r.event === 'server.output' && r.truncated);
    expect(long).toBeDefined();
    expect(long!.line).toBe('L'.repeat(16 * 1024));
    expect(maxGap).toBeLessThan(1000);
    expect(sup.state).toBe('healthy');
    // 300 000 lines × (line + 128 B overhead) exceed the 8 MiB burst: some were dropped and counted.
    await sup.stop();
    const dropped = records.filter((r) => r.event === 'server.output-dropped');
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped.at(-1)!.droppedTotal).toBeGreaterThan(0);
  });
});
