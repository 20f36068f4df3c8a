/**
 * One lifecycle for every worker thread lander starts (install, verify,
 * pack): start it with its request (from the worker host, `worker-host.ts`:
 * never on the caller's thread), hand its intermediate messages to the
 * caller, settle once on its final message, on an error or on an exit
 * without a result, forward an abort, and always terminate it afterwards.
 */
import type { ResourceLimits } from 'node:worker_threads';
import { AbortError, LanderError, deserializeError, type SerializedError } from './errors.ts';
import { moduleUrl } from './runtime.ts';
import { spawnWorker, type HostedWorker } from './worker-host.ts';

export interface RunWorkerOptions<M, R> {
  /** The worker's module, relative to `base` (an `import.meta.url`): resolved for this runtime by `moduleUrl`. */
  base: string;
  module: string;
  /** Passed as `workerData`. */
  request: unknown;
  /** The worker's V8 heap limits (Node; Deno ignores them). */
  resourceLimits?: ResourceLimits;
  /** What the work is, for messages: "install server 1.2.0", "verify /x". */
  what: string;
  /** The worker's name in messages: "the install worker failed". */
  name: string;
  /**
   * Reads one message: `{ done: R }` settles with R, `{ error }` settles with
   * the rebuilt error; anything else (undefined) was intermediate (progress, logs).
   */
  onMessage(m: M): { done: R } | { error: SerializedError } | undefined;
  signal?: AbortSignal;
  /**
   * With `signal`: what an abort does. Without it, an abort settles at once.
   * With it, the hook is called (e.g. to post an abort message so the worker
   * cleans up) and the worker gets `graceMs` to settle before it is terminated.
   */
  onAbort?(worker: HostedWorker, reason: string): void;
  /** @default 5000 */
  graceMs?: number;
}

/**
 * Runs one worker to its result.
 *
 * @throws the worker's own error rebuilt with its class and code, AbortError,
 *   LanderError `ERR_WORKER_FAILED` (the worker threw outside its handler) or
 *   `ERR_WORKER_EXIT` (it exited without a result).
 * @example await runWorker({ base: import.meta.url, module: '../../workers/verify.worker.ts', request, what: `verify ${dir}`, onMessage: (e) => ... })
 */
export function runWorker<M, R>(opts: RunWorkerOptions<M, R>): Promise<R> {
  const { what, signal } = opts;
  return new Promise<R>((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError(`Cannot ${what}: aborted before start`, { cause: signal.reason }));
    const worker = spawnWorker(moduleUrl(opts.base, opts.module), { workerData: opts.request, ...(opts.resourceLimits ? { resourceLimits: opts.resourceLimits } : {}) });
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(graceTimer);
      signal?.removeEventListener('abort', onAbort);
      fn();
      // The worker ends by itself after its last message; terminate covers one stuck in cleanup.
      worker.terminate();
    };
    const onAbort = () => {
      const reason = String((signal!.reason as Error)?.message ?? signal!.reason ?? 'Aborted');
      if (!opts.onAbort) return finish(() => reject(new AbortError(`Cannot ${what}: aborted`, { cause: signal!.reason })));
      opts.onAbort(worker, reason);
      const grace = opts.graceMs ?? 5000;
      graceTimer = setTimeout(() => finish(() => reject(new AbortError(`Cannot ${what}: aborted; the worker did not stop within ${grace} ms and was terminated`))), grace);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (message) => {
      const m = message as M;
      const r = opts.onMessage(m);
      if (!r) return;
      if ('done' in r) finish(() => resolve(r.done));
      else finish(() => reject(deserializeError(r.error)));
    });
    worker.on('error', (err) => finish(() => reject(new LanderError('ERR_WORKER_FAILED', `Cannot ${what}: the ${opts.name} worker failed: ${err.message}`, { cause: err }))));
    worker.on('exit', (code) => finish(() => reject(new LanderError('ERR_WORKER_EXIT', `Cannot ${what}: the ${opts.name} worker exited (code ${code}) without a result`, { data: { exitCode: code } }))));
  });
}
