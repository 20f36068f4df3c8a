/**
 * Main-thread side of the pack worker: starts it, forwards progress, turns
 * its final event into a result or a rebuilt error, forwards aborts.
 */
import { Worker } from 'node:worker_threads';
import { AbortError, LanderError, PackError, deserializeError, type SerializedError } from '../base/errors.ts';
import { moduleUrl } from '../base/runtime.ts';
import type { PackDone, PackProgress, PackRequest, PackWorkerEvent } from '../../workers/pack-protocol.ts';

export interface RunPackWorkerOptions {
  signal?: AbortSignal;
  onProgress?(e: PackProgress): void;
}

/** PackError is not in errors.ts's class table (it is declared after it), so it is rebuilt here. */
function rebuild(s: SerializedError): Error {
  if (s.name !== 'PackError' || !s.code) return deserializeError(s);
  const err = new PackError(s.code, s.message, { data: s.data ?? {}, ...(s.cause ? { cause: deserializeError(s.cause) } : {}) });
  if (s.stack) err.stack = s.stack;
  return err;
}

/**
 * Writes one component's archive in a worker thread.
 *
 * @throws the worker's error rebuilt (PackError `ERR_PACK_SOURCE`, an I/O error), AbortError,
 *   or LanderError `ERR_WORKER_EXIT` when the worker died without a result.
 */
export function runPackWorker(req: PackRequest, opts: RunPackWorkerOptions = {}): Promise<PackDone> {
  return new Promise<PackDone>((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new AbortError(`Cannot pack ${req.component}: aborted before start`, { cause: opts.signal.reason }));
    const worker = new Worker(moduleUrl(import.meta.url, '../../workers/pack.worker.ts'), { workerData: req });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
      void worker.terminate();
    };
    // Packing holds nothing worth a grace period: the temp archive is removed by the caller.
    const onAbort = () => finish(() => reject(new AbortError(`Cannot pack ${req.component}: aborted`, { cause: opts.signal!.reason })));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (e: PackWorkerEvent) => {
      if (e.type === 'progress') opts.onProgress?.(e);
      else if (e.type === 'done') finish(() => resolve(e));
      else finish(() => reject(rebuild(e.error)));
    });
    worker.on('error', (err) => finish(() => reject(new LanderError('ERR_WORKER_FAILED', `Cannot pack ${req.component}: the pack worker failed: ${err.message}`, { cause: err }))));
    worker.on('exit', (code) => finish(() => reject(new LanderError('ERR_WORKER_EXIT', `Cannot pack ${req.component}: the pack worker exited (code ${code}) without a result`, { data: { exitCode: code } }))));
  });
}
