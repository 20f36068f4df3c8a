/**
 * The daemon under load: `lander run` (a real child process) installs a
 * ~1 GB cuda-libs archive from nginx on loopback while it supervises the
 * stand-in server. Meanwhile this process asks `/status` over the unix socket
 * every 50 ms and times each answer; afterwards it reads the daemon's own
 * main-thread event-loop delay from `/metrics`.
 *
 *   npm run build && node dist/bench/daemon-load.js [MB]
 *
 * BENCH_DAEMON_RUNTIME=deno runs the daemon under Deno (the npm package's
 * binary); BENCH_LANDER=<path to bin/lander.js> runs another build's daemon
 * (an A/B against a `git worktree` of an older commit).
 */
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, OUT } from './fixture.ts';
import { serveDir } from './serve.ts';
import { median } from './stats.ts';
import { freePort } from '../src/base/free-port.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STAND_IN = path.join(REPO, 'test/fixtures/stand-in-server.mjs');


function get(socketPath: string, p: string): Promise<{ ms: number; body: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ socketPath, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ ms: performance.now() - t0, body }));
    }).on('error', reject);
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export interface DaemonLoadResult {
  archiveMiB: number;
  installSeconds: number;
  status: { count: number; p50: number; p99: number; max: number };
  eventLoop: { p50: number; p99: number; max: number };
  /** The same measure in an idle process beside it: what the machine alone inflicts. */
  idleControl: { p50: number; p99: number; max: number };
}

export async function daemonLoadBench(mb: number): Promise<DaemonLoadResult> {
  const cuda = await fixture('cuda-libs', mb);
  const core = await fixture('core', Math.max(8, Math.round(mb * 0.15)));
  const work = path.join(OUT, 'work', `daemon-${Date.now()}`);
  await mkdir(work, { recursive: true });
  const served = await serveDir(path.dirname(cuda.file), path.join(work, 'nginx'));
  const root = path.join(work, 'root');
  const port = await freePort();
  const config = {
    root,
    components: {
      server: { version: 'bench', url: served.url(path.basename(core.file)), sha256: core.sha256 },
      'cuda-libs': { version: `bench-${mb}`, url: served.url(path.basename(cuda.file)), sha256: cuda.sha256 },
    },
    server: {
      command: process.execPath,
      args: [STAND_IN, '--port', String(port)],
      health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' } },
    },
    log: { level: 'warn' },
  };
  const configPath = path.join(work, 'lander.json');
  await writeFile(configPath, JSON.stringify(config));
  // An idle process beside the daemon measures the machine's own scheduling noise.
  const control = spawn(process.execPath, [fileURLToPath(new URL('./eld-control.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  let controlOut = '';
  control.stdout.setEncoding('utf8').on('data', (d: string) => (controlOut += d));
  await new Promise<void>((resolve) => control.stdout.once('data', () => resolve()));
  const t0 = performance.now();
  const lander = [process.env.BENCH_LANDER ?? path.join(REPO, 'bin/lander.js'), 'run', '--config', configPath];
  const child = process.env.BENCH_DAEMON_RUNTIME === 'deno'
    ? spawn(path.join(REPO, 'node_modules/deno/deno'), ['run', '-A', ...lander], { stdio: ['ignore', 'ignore', 'inherit'] })
    : spawn(process.execPath, lander, { stdio: ['ignore', 'ignore', 'inherit'] });
  const socketPath = path.join(root, 'lander.sock');
  const latencies: number[] = [];
  let landedAt: number | undefined;
  try {
    while (performance.now() - t0 < 600_000) {
      await new Promise((r) => setTimeout(r, 50));
      let r;
      try {
        r = await get(socketPath, '/status');
      } catch {
        continue; // not listening yet
      }
      latencies.push(r.ms);
      const s = JSON.parse(r.body) as { components: Record<string, { installed?: string }>; server: { state: string } };
      if (s.components['cuda-libs']?.installed === `bench-${mb}` && s.server.state === 'healthy') {
        landedAt = performance.now();
        break;
      }
    }
    if (landedAt === undefined) throw new Error('the daemon did not land the fixture within 10 minutes');
    const metrics = (await get(socketPath, "/metrics")).body;
    if (process.env.BENCH_DEBUG) console.error(metrics);
    control.kill('SIGTERM');
    await new Promise((r) => control.once('exit', r));
    const idle = JSON.parse(controlOut.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { p50: number; p99: number; max: number };
    const q = (quantile: string) => Number(new RegExp(`lander_event_loop_delay_seconds\\{quantile="${quantile}"\\} (\\S+)`).exec(metrics)?.[1] ?? NaN) * 1000;
    return {
      archiveMiB: (cuda.bytes + core.bytes) / 2 ** 20,
      installSeconds: (landedAt - t0) / 1000,
      status: { count: latencies.length, p50: median(latencies), p99: pct(latencies, 99), max: Math.max(...latencies) },
      eventLoop: { p50: q('0.5'), p99: q('0.99'), max: q('1') },
      idleControl: idle,
    };
  } finally {
    control.kill('SIGKILL');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await served.close();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const mb = Number(process.argv[2] ?? process.env.BENCH_SCALE ?? 1024);
  const r = await daemonLoadBench(mb);
  const f = (n: number) => n.toFixed(1);
  console.log(`| daemon under load (${f(r.archiveMiB)} MiB of archives, landed in ${f(r.installSeconds)} s) | p50 | p99 | max |`);
  console.log('|---|---|---|---|');
  console.log(`| /status latency over the socket, ms (${r.status.count} requests) | ${f(r.status.p50)} | ${f(r.status.p99)} | ${f(r.status.max)} |`);
  console.log(`| daemon main-thread event-loop delay, ms | ${f(r.eventLoop.p50)} | ${f(r.eventLoop.p99)} | ${f(r.eventLoop.max)} |`);
  console.log(`| idle control process beside it, event-loop delay, ms | ${f(r.idleControl.p50)} | ${f(r.idleControl.p99)} | ${f(r.idleControl.max)} |`);
}
