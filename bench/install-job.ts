/**
 * One bench install job and the InstallRequest lander gets for it, shared
 * by `install-child.ts` (one install per fresh process) and `main-stall.ts`
 * (installs in a daemon-like process). Types only besides this: loading it
 * costs a run nothing.
 */
import type { InstallRequest } from '../workers/protocol.ts';
import type { FlushMode } from '../src/install/flush.ts';

export type NodeVariant = 'lander' | 'main-thread' | 'three-pass' | 'idle';

export interface Job {
  variant: NodeVariant;
  url: string;
  sha256: string;
  /** Must not exist; the parent exists. */
  dir: string;
  /** Scratch file for `.part` / the three-pass download. */
  scratch: string;
  /** lander's flush mode (default: BENCH_FLUSH, else lander's own default). */
  flush?: FlushMode;
  /** lander: a spare install worker ready before the span, as the daemon keeps one (default true). */
  spare?: boolean;
}

export function request(job: Job): InstallRequest {
  return {
    type: 'install', jobId: 'bench', component: 'cuda-libs', version: 'bench', urls: [job.url], sha256: job.sha256,
    partPath: job.scratch, stagingDir: job.dir,
    download: { connectTimeoutMs: 10_000, idleTimeoutMs: 30_000, retries: 0, backoffInitialMs: 100, backoffMaxMs: 1000, ...(process.env.BENCH_SEGMENT_BELOW ? { segmentBelowBytesPerSec: Number(process.env.BENCH_SEGMENT_BELOW) } : {}) },
    limits: { maxEntries: 200_000, maxExpansionRatio: 200, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 64, maxExtractedBytes: 64 * 2 ** 30 },
    progressIntervalMs: 100,
    ...flushOf(job),
    ...(process.env.BENCH_OFF_THREAD_BYTES ? { offThreadBytes: Number(process.env.BENCH_OFF_THREAD_BYTES) } : {}),
  };
}

function flushOf(job: Job): { flush?: FlushMode } {
  const flush = job.flush ?? (process.env.BENCH_FLUSH as FlushMode | undefined);
  return flush ? { flush } : {};
}
