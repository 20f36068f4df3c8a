/**
 * Main-thread side of the pack worker: forwards progress, turns its final
 * event into a result or a rebuilt error. An abort settles at once: packing
 * holds nothing worth a grace period (the caller removes the temp archive).
 */
import { runWorker } from '../base/run-worker.ts';
import type { PackDone, PackProgress, PackRequest, PackWorkerEvent } from '../../workers/pack-protocol.ts';

export interface RunPackWorkerOptions {
  signal?: AbortSignal;
  onProgress?(e: PackProgress): void;
}

/**
 * Writes one component's archive in a worker thread.
 *
 * @throws the worker's error rebuilt (PackError `ERR_PACK_SOURCE`, an I/O error), AbortError,
 *   or LanderError `ERR_WORKER_EXIT` when the worker died without a result.
 */
export function runPackWorker(req: PackRequest, opts: RunPackWorkerOptions = {}): Promise<PackDone> {
  return runWorker<PackWorkerEvent, PackDone>({
    base: import.meta.url,
    module: '../../workers/pack.worker.ts',
    request: req,
    what: `pack ${req.component}`,
    name: 'pack',
    ...(opts.signal ? { signal: opts.signal } : {}),
    onMessage(e) {
      if (e.type === 'progress') {
        opts.onProgress?.(e);
        return undefined;
      }
      return e.type === 'done' ? { done: e } : { error: e.error };
    },
  });
}
