/** InstallRequests for tests that drive the install worker directly, with quick timeouts and roomy limits. */
import path from 'node:path';
import type { DownloadSettings, ExtractLimits, InstallRequest } from '../../workers/protocol.ts';

export const TEST_LIMITS: ExtractLimits = { maxEntries: 10_000, maxExpansionRatio: 200, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 1024, maxExtractedBytes: 1 << 30 };

export interface WorkerRequestOptions {
  /** A fresh folder holding `downloads/` (already created) and, later, `staging/`. */
  root: string;
  url: string;
  sha256: string;
  jobId: string;
  download?: Partial<DownloadSettings>;
  limits?: Partial<ExtractLimits>;
}

export function workerRequest(o: WorkerRequestOptions, over: Partial<InstallRequest> = {}): InstallRequest {
  return {
    type: 'install', jobId: o.jobId, component: 'server', version: '0.3.1',
    urls: [o.url], sha256: o.sha256,
    partPath: path.join(o.root, 'downloads', `${o.sha256}.part`),
    stagingDir: path.join(o.root, 'staging', o.jobId),
    download: { connectTimeoutMs: 2000, idleTimeoutMs: 1000, retries: 3, backoffInitialMs: 10, backoffMaxMs: 50, ...o.download },
    limits: { ...TEST_LIMITS, ...o.limits },
    progressIntervalMs: 20,
    ...over,
  };
}

/**
 * Where gunzip runs, for tests that run every case both ways: on the install worker's thread (test
 * archives are under the off-thread size), and in the hash worker beside the SHA-256, as a large
 * archive is installed.
 */
export const GUNZIP_MODES = [['install-worker', {}], ['hash-worker', { offThreadBytes: 0 }]] as const satisfies readonly (readonly [string, Partial<InstallRequest>])[];
