/** Main-thread side of the verify worker: one request in, one report (or a rebuilt error) out. */
import { Worker } from 'node:worker_threads';
import { LanderError, deserializeError } from '../base/errors.ts';
import { moduleUrl } from '../base/runtime.ts';
import type { ErrorEvent, VerifyDoneEvent, VerifyReport, VerifyRequest } from '../../workers/protocol.ts';

/**
 * Re-hashes `req.dir` against `req.expected` in a worker thread.
 *
 * @example const report = await runVerifyWorker({ type: 'verify', dir, expected });
 */
export function runVerifyWorker(req: VerifyRequest): Promise<VerifyReport> {
  return new Promise<VerifyReport>((resolve, reject) => {
    const worker = new Worker(moduleUrl(import.meta.url, '../../workers/verify.worker.ts'), { workerData: req });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      void worker.terminate();
    };
    worker.on('message', (e: VerifyDoneEvent | ErrorEvent) => {
      if (e.type === 'verify-done') finish(() => resolve(e.report));
      else finish(() => reject(deserializeError(e.error)));
    });
    worker.on('error', (err) => finish(() => reject(new LanderError('ERR_WORKER_FAILED', `Cannot verify ${req.dir}: the verify worker failed: ${err.message}`, { cause: err }))));
    worker.on('exit', (code) => finish(() => reject(new LanderError('ERR_WORKER_EXIT', `Cannot verify ${req.dir}: the verify worker exited (code ${code}) without a result`, { data: { exitCode: code } }))));
  });
}
