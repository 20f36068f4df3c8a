/**
 * Messages of the chunked-install worker (workers/chunked.worker.ts), which
 * runs a whole indexed install off the main thread: index decoding and
 * planning, range receive, the inflate pool (its own workers), the checks.
 */
import type { SerializedError } from '../src/base/errors.ts';
import type { ChunkedDone, ChunkedInstallRequest, ChunkedProgress } from '../src/install/chunked/chunked-install.ts';
import type { RegistryRangeSourceOptions } from '../src/install/chunked/registry-range-source.ts';

export interface ChunkedWorkerRequest {
  /** `sources` carry `indexFile` only: the worker decodes the indexes itself (a big one costs ~150 ms). */
  req: ChunkedInstallRequest;
  http: { connectTimeoutMs?: number; idleTimeoutMs?: number };
  /** An `oci://` component: ranges through these registries, with their headers. */
  registry?: RegistryRangeSourceOptions;
}

export type ChunkedWorkerEvent =
  | { type: 'progress'; progress: ChunkedProgress }
  | { type: 'log'; level: 'info' | 'warn'; event: string; fields: Record<string, unknown>; msg: string }
  | { type: 'done'; done: ChunkedDone }
  | { type: 'error'; error: SerializedError };

export interface ChunkedAbortMessage {
  type: 'abort';
  reason?: string;
}
