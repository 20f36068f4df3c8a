/**
 * One install, in a fresh process, so its peak RSS is its own:
 * `node dist/bench/install-child.js '<json Job>'`. Prints one JSON line
 * (ChildResult) on stdout.
 *
 * Variants:
 * - `lander`: runInstallWorker from the main thread (the real path), a
 *   spare install worker ready first as in the daemon (unless `spare: false`);
 * - `main-thread`: the same one-pass pipeline run on the main thread;
 * - `three-pass`: download to a file, hash the file, extract the file, with
 *   the same runtime and libraries (`three-pass.ts`);
 * - `idle`: nothing; the runtime's own RSS, for reference.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { request, type Job, type NodeVariant } from './install-job.ts';

export interface ChildResult {
  variant: NodeVariant;
  /** From the start of the install to its end, inside this process, its modules (and lander's spare worker) loaded before. */
  innerMs: number;
  /** `process.resourceUsage().maxRSS`, KiB. */
  maxRssKiB: number;
  /** Event-loop delay beyond the 10 ms timer resolution, ms. */
  eld: { p50: number; p99: number; max: number };
  /** User + system CPU of the whole process (all threads), ms: less sensitive to other load than wall time. */
  cpuMs: number;
  bytes?: number;
}

const RESOLUTION_MS = 10;

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]!) as Job;
  // Before the span, as in a running process: each variant's modules loaded; for lander, as the daemon
  // does at boot, the worker host started (a fresh process's first Worker holds its thread ~5 ms) and a
  // spare install worker ready with its modules (`spare: false`: none, as in a one-shot process).
  // The span is then what a running daemon (or app, for the three-pass loop) takes for one install;
  // the parent's spawn-to-exit wall time is the fresh process's, start-up and all.
  let install: () => Promise<number | undefined>;
  switch (job.variant) {
    case 'lander': {
      (await import('../src/base/worker-host.ts')).startWorkerHost();
      const client = await import('../src/install/worker-client.ts');
      if (job.spare !== false) await client.prewarmInstallWorker();
      install = async () => (await client.runInstallWorker(request(job))).bytes;
      break;
    }
    case 'main-thread': {
      const { runInstallPipeline } = await import('../src/install/pipeline.ts');
      install = async () => (await runInstallPipeline(request(job), { signal: new AbortController().signal, post: () => {} })).bytes;
      break;
    }
    case 'three-pass': {
      const { threePass } = await import('./three-pass.ts');
      install = () => threePass(job);
      break;
    }
    case 'idle': install = async () => { await new Promise((r) => setTimeout(r, 200)); return undefined; };
  }
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  const t0 = performance.now();
  const bytes = await install();
  const innerMs = performance.now() - t0;
  h.disable();
  const excess = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  const ru = process.resourceUsage();
  const out: ChildResult = {
    variant: job.variant, innerMs, maxRssKiB: ru.maxRSS, cpuMs: (ru.userCPUTime + ru.systemCPUTime) / 1000,
    eld: { p50: excess(h.percentile(50)), p99: excess(h.percentile(99)), max: excess(h.max) }, bytes,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

await main();
