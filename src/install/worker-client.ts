/**
 * Main-thread side of the install worker: starts it, forwards progress and
 * log events, turns its final event into a resolved DoneEvent or a rebuilt
 * LanderError, and forwards aborts.
 */
import { Worker } from 'node:worker_threads';
import { AbortError, LanderError, deserializeError } from '../base/errors.ts';
import { moduleUrl } from '../base/runtime.ts';
import type { AbortMessage, DoneEvent, InstallRequest, LogEvent, ProgressEvent, WorkerEvent } from '../../workers/protocol.ts';

export interface RunInstallWorkerOptions {
  /** Aborting posts an AbortMessage; the worker keeps the `.part` and removes staging. */
  signal?: AbortSignal;
  /** Throttled by the worker (`progressIntervalMs`). */
  onProgress?(e: ProgressEvent): void;
  onLog?(e: LogEvent): void;
  /** Time the worker gets to stop cleanly after an abort before it is terminated. @default 5000 */
  abortGraceMs?: number;
}

/**
 * Runs one install in a worker thread.
 *
 * @throws the worker's error, rebuilt with its class and code (e.g.
 *   DigestMismatchError, ArchiveError `ERR_ARCHIVE_PATH`, DownloadError), or
 *   AbortError, or LanderError `ERR_WORKER_EXIT` when the worker died without a result.
 * @example const done = await runInstallWorker(req, { signal, onProgress: (e) => bar.update(e.bytes) });
 */
export function runInstallWorker(req: InstallRequest, opts: RunInstallWorkerOptions = {}): Promise<DoneEvent> {
  return new Promise<DoneEvent>((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new AbortError(`Cannot install ${req.component} ${req.version}: aborted before start`, { cause: opts.signal.reason }));
    const worker = new Worker(moduleUrl(import.meta.url, '../../workers/install.worker.ts'), { workerData: req });
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(graceTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
      // The worker ends by itself after its last event; terminate covers one stuck in cleanup.
      void worker.terminate();
    };
    const onAbort = () => {
      const msg: AbortMessage = { type: 'abort', reason: String((opts.signal!.reason as Error)?.message ?? opts.signal!.reason ?? 'Aborted') };
      worker.postMessage(msg);
      graceTimer = setTimeout(() => finish(() => reject(new AbortError(`Cannot install ${req.component} ${req.version}: aborted; the worker did not stop within ${opts.abortGraceMs ?? 5000} ms and was terminated`))), opts.abortGraceMs ?? 5000);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (e: WorkerEvent) => {
      switch (e.type) {
        case 'progress': opts.onProgress?.(e); break;
        case 'log': opts.onLog?.(e); break;
        case 'done': finish(() => resolve(e)); break;
        case 'error': finish(() => reject(deserializeError(e.error))); break;
      }
    });
    worker.on('error', (err) => finish(() => reject(new LanderError('ERR_WORKER_FAILED', `Cannot install ${req.component} ${req.version}: the install worker failed: ${err.message}`, { cause: err }))));
    worker.on('exit', (code) => finish(() => reject(new LanderError('ERR_WORKER_EXIT', `Cannot install ${req.component} ${req.version}: the install worker exited (code ${code}) without a result`, { data: { exitCode: code } }))));
  });
}
