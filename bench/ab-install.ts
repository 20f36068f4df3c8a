/**
 * A/B of the install worker between two builds, interleaved in one run so
 * both see the same machine load (two shared cores make back-to-back runs
 * of separate commands incomparable):
 *
 *   git worktree add /tmp/lander-before <commit> && (cd /tmp/lander-before && npx tsc)
 *   npm run build && node dist/bench/ab-install.js /tmp/lander-before/dist dist bench/out/fixtures/cuda-libs-256mb-v1.json 3
 *
 * Prints wall and process CPU time (all threads) per run and the B/A ratio
 * of the medians. Used to price per-file hashing during extraction.
 * AB_HTTP=1 downloads from nginx on loopback (bench/serve.ts) instead of
 * reading a file: URL, so socket reads are part of the install.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DoneEvent, InstallRequest } from '../workers/protocol.ts';
import { WORK } from './install.ts';
import { serveDir } from './serve.ts';

type Run = (req: InstallRequest) => Promise<DoneEvent>;

async function load(dist: string): Promise<Run> {
  const mod = (await import(pathToFileURL(path.resolve(dist, 'src/install/worker-client.js')).href)) as { runInstallWorker: Run };
  return mod.runInstallWorker;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const [distA, distB, fixtureJson, repsArg] = process.argv.slice(2);
  if (!distA || !distB || !fixtureJson) throw new Error('usage: ab-install.js <distA> <distB> <fixture.json> [reps]');
  const fixture = JSON.parse(await readFile(fixtureJson, 'utf8')) as { file: string; sha256: string; bytes: number };
  const reps = Number(repsArg ?? 3);
  const runners = { A: await load(distA), B: await load(distB) };
  const srv = process.env.AB_HTTP ? await serveDir(path.dirname(path.resolve(fixture.file)), WORK) : undefined;
  const url = srv ? srv.url(path.basename(fixture.file)) : pathToFileURL(fixture.file).href;
  const times: Record<'A' | 'B', { wall: number[]; cpu: number[] }> = { A: { wall: [], cpu: [] }, B: { wall: [], cpu: [] } };
  for (let i = 0; i < reps; i++) {
    for (const k of (i % 2 === 0 ? ['A', 'B'] : ['B', 'A']) as ('A' | 'B')[]) {
      const dir = await mkdtemp(path.join(tmpdir(), 'lander-ab-'));
      const req: InstallRequest = {
        type: 'install', jobId: `ab-${k}-${i}`, component: 'bench', version: k, urls: [url], sha256: fixture.sha256,
        partPath: path.join(dir, 'x.part'), stagingDir: path.join(dir, 'staging'),
        download: { connectTimeoutMs: 10_000, idleTimeoutMs: 30_000, retries: 0, backoffInitialMs: 100, backoffMaxMs: 1000 },
        limits: { maxEntries: 200_000, maxExpansionRatio: 200, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 64, maxExtractedBytes: 64 * 2 ** 30 },
      };
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const done = await runners[k](req);
      const wall = performance.now() - t0;
      const c = process.cpuUsage(cpu0);
      const cpu = (c.user + c.system) / 1000;
      times[k].wall.push(wall);
      times[k].cpu.push(cpu);
      const hashed = done.files.filter((f) => f.sha256).length;
      console.log(JSON.stringify({ build: k, run: i, wallMs: Math.round(wall), cpuMs: Math.round(cpu), files: done.files.length, hashed, ...('partBytes' in done ? { partBytes: done.partBytes } : {}) }));
      await rm(dir, { recursive: true, force: true });
    }
  }
  await srv?.close();
  const ratio = (m: 'wall' | 'cpu') => (median(times.B[m]) / median(times.A[m])).toFixed(3);
  console.log(JSON.stringify({ fixture: path.basename(fixture.file), archiveBytes: fixture.bytes, reps, medianWallMs: { A: Math.round(median(times.A.wall)), B: Math.round(median(times.B.wall)) }, medianCpuMs: { A: Math.round(median(times.A.cpu)), B: Math.round(median(times.B.cpu)) }, ratioWall: ratio('wall'), ratioCpu: ratio('cpu') }));
}

await main();
