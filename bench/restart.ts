/**
 * Restart benchmark: lander's share of landing a generation with the
 * stand-in server: swapSymlink + Supervisor.restartOn (stop the old server,
 * spawn, first healthy probe), next to the stand-in's own start time
 * (`ready_ms` since its process started), repeated.
 *
 * `node dist/bench/restart.js` runs it alone.
 */
import http from 'node:http';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { swapSymlink } from '../src/store/generation.ts';
import { silentLogger } from '../src/report/log.ts';
import { scriptCommand } from '../src/base/runtime.ts';
import { Supervisor } from '../src/supervise/supervisor.ts';
import type { ServerConfig } from '../src/config/schema.ts';
import { OUT } from './fixture.ts';
import { summary } from './stats.ts';
import { freePort } from '../src/base/free-port.ts';

const STAND_IN = fileURLToPath(new URL('../../test/fixtures/stand-in-server.mjs', import.meta.url));

export interface RestartResult {
  /** Per repetition, ms. */
  swap: number[];
  stop: number[];
  /** restartOn's start: spawn to the first healthy probe. */
  startToHealthy: number[];
  /** The stand-in's own `ready_ms`: process start to listening. */
  readyMs: number[];
  total: number[];
}


function getJson(url: string): Promise<{ readyMs: number }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c; });
      res.on('end', () => resolve(JSON.parse(s) as { readyMs: number }));
    }).on('error', reject);
  });
}

export async function restartBench(reps: number): Promise<RestartResult> {
  const root = path.join(OUT, 'work', 'restart');
  await rm(root, { recursive: true, force: true });
  for (const g of [1, 2]) {
    await mkdir(path.join(root, 'generations', String(g)), { recursive: true });
    await copyFile(STAND_IN, path.join(root, 'generations', String(g), 'stand-in-server.mjs'));
  }
  const current = path.join(root, 'current');
  await swapSymlink(current, 'generations/1');
  const port = await freePort();
  const cmd = scriptCommand('./stand-in-server.mjs', ['--port', String(port)]);
  // The config defaults, except the probe URL: interval 500 ms (a probe also runs on every output line).
  const server: ServerConfig = {
    command: cmd.command, args: cmd.args, env: {},
    health: { url: `http://127.0.0.1:${port}/health`, status: 200, json: { status: 'healthy' }, interval: 500, livenessInterval: 5000, timeout: 30_000, probeTimeout: 5000 },
    stop: { signal: 'SIGTERM', timeout: 10_000 },
    restart: { when: 'immediate', initialDelay: 1000, factor: 2, maxDelay: 60_000, resetAfter: 60_000, crashLoopExits: 5, window: 120_000 },
  } as ServerConfig;
  const sup = new Supervisor({ server, log: silentLogger() });
  let stoppedAt = 0;
  sup.on('state', (c) => { if (c.to === 'stopped') stoppedAt = performance.now(); });
  await sup.start(current, 1);
  const out: RestartResult = { swap: [], stop: [], startToHealthy: [], readyMs: [], total: [] };
  try {
    for (let i = 0; i < reps; i++) {
      const g = i % 2 === 0 ? 2 : 1;
      const t0 = performance.now();
      await swapSymlink(current, `generations/${g}`);
      const t1 = performance.now();
      await sup.restartOn(current, g);
      const t2 = performance.now();
      const who = await getJson(`http://127.0.0.1:${port}/cwd`);
      out.swap.push(t1 - t0);
      out.stop.push(stoppedAt - t1);
      out.startToHealthy.push(t2 - stoppedAt);
      out.readyMs.push(who.readyMs);
      out.total.push(t2 - t0);
    }
  } finally {
    await sup.stop();
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const r = await restartBench(Number(process.env.BENCH_RESTARTS ?? 10));
  for (const [k, v] of Object.entries(r)) console.log(`${k}: ${summary(v as number[], 1)} ms`);
}
