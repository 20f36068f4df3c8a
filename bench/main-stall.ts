/**
 * Main-thread stalls while installs start and run, in a daemon-like process:
 * boot (start the worker host, if the build has one, as the daemon does),
 * settle 500 ms, then 4 installs of the 44 MB bench fixture through nginx's
 * per-connection cap (bench/README.md: `/slow-10m/` on 127.0.0.1:8099),
 * with a 1 ms interval timer recording every gap on the main thread
 * (Deno's monitorEventLoopDelay reads 0, so no histogram here).
 *
 *   node dist/bench/main-stall.js [dist]            # A/B: another build's dist
 *   npx deno run -A dist/bench/main-stall.js [dist]
 *
 * Prints the worst gap and the p99 per install, ms beyond the 1 ms interval.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DoneEvent, InstallRequest } from '../workers/protocol.ts';
import { request } from './install-job.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.argv[2] ?? path.join(HERE, '..'));
const url = process.env.BENCH_URL ?? 'http://127.0.0.1:8099/slow-10m/cuda-libs-44mb-v1.tar.gz';
const fixture = JSON.parse(readFileSync(path.join(HERE, '..', '..', 'bench', 'out', 'fixtures', 'cuda-libs-44mb-v1.json'), 'utf8')) as { sha256: string };

const hostModule = path.join(dist, 'src/base/worker-host.js');
if (existsSync(hostModule)) ((await import(hostModule)) as { startWorkerHost(): void }).startWorkerHost();
const client = (await import(path.join(dist, 'src/install/worker-client.js'))) as { runInstallWorker(r: InstallRequest): Promise<DoneEvent>; prewarmInstallWorker?(): Promise<void> };
const { runInstallWorker } = client;
// As the daemon does at boot (builds that have it): a spare install worker waits for the first install.
if (process.env.BENCH_SPARE !== '0') await client.prewarmInstallWorker?.();
await new Promise((r) => setTimeout(r, 500));

const scratch = path.join(HERE, '..', '..', 'bench', 'out', 'work', 'main-stall');
await rm(scratch, { recursive: true, force: true });
await mkdir(scratch, { recursive: true });
const gaps: number[] = [];
let last = performance.now();
const timer = setInterval(() => { const now = performance.now(); gaps.push(now - last - 1); last = now; }, 1);
const per: { max: number; p99: number; samples: number }[] = [];
for (let i = 0; i < 4; i++) {
  const from = gaps.length;
  await runInstallWorker(request({ variant: 'lander', url, sha256: fixture.sha256, dir: path.join(scratch, `t${i}`), scratch: path.join(scratch, `a${i}.part`) }));
  const g = gaps.slice(from).sort((a, b) => a - b);
  per.push({ max: +g[g.length - 1]!.toFixed(1), p99: +g[Math.floor(g.length * 0.99)]!.toFixed(1), samples: g.length });
}
clearInterval(timer);
await rm(scratch, { recursive: true, force: true });
console.log(JSON.stringify({ dist, per }));
