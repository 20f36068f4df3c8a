/**
 * Main-thread side of the install worker: forwards progress and log events,
 * turns its final event into a DoneEvent or a rebuilt LanderError, and on an
 * abort asks the worker to stop cleanly (it keeps the `.part`, removes staging).
 */
import { runWorker } from '../base/run-worker.ts';
import { moduleUrl } from '../base/runtime.ts';
import { prewarmWorker } from '../base/worker-host.ts';
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
 * A small young generation: the tar stream's chunks, moved in from the hash worker, are freed by
 * scavenges that its pacing allocation triggers (`PartHasher.adopt`); with V8's default (up to
 * 16 MiB semi-spaces) they waited for the external-memory limit instead.
 */
export const INSTALL_WORKER_LIMITS = { maxYoungGenerationSizeMb: 2 };

const INSTALL_WORKER = '../../workers/install.worker.ts';

/**
 * Keeps an install worker (and its hash worker) started ahead of the next install, on the worker
 * host: that install then starts to download, hash and inflate without waiting ~0.2 s for two
 * threads and their modules. The daemon calls it at boot; resolves when the spare is ready.
 */
export function prewarmInstallWorker(): Promise<void> {
  return prewarmWorker(moduleUrl(import.meta.url, INSTALL_WORKER), { resourceLimits: INSTALL_WORKER_LIMITS });
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
  return runWorker<WorkerEvent, DoneEvent>({
    base: import.meta.url,
    module: INSTALL_WORKER,
    request: req,
    resourceLimits: INSTALL_WORKER_LIMITS,
    what: `install ${req.component} ${req.version}`,
    name: 'install',
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.abortGraceMs !== undefined ? { graceMs: opts.abortGraceMs } : {}),
    onAbort(worker, reason) {
      const msg: AbortMessage = { type: 'abort', reason };
      worker.postMessage(msg);
    },
    onMessage(e) {
      switch (e.type) {
        case 'progress': opts.onProgress?.(e); return undefined;
        case 'log': opts.onLog?.(e); return undefined;
        case 'done': return { done: e };
        case 'error': return { error: e.error };
      }
    },
  });
}
