/** Main-thread side of the verify worker: one request in, one report (or a rebuilt error) out. */
import { runWorker } from '../base/run-worker.ts';
import type { ErrorEvent, VerifyDoneEvent, VerifyReport, VerifyRequest } from '../../workers/protocol.ts';

/**
 * Re-hashes `req.dir` against `req.expected` in a worker thread.
 *
 * @example const report = await runVerifyWorker({ type: 'verify', dir, expected });
 */
export function runVerifyWorker(req: VerifyRequest): Promise<VerifyReport> {
  return runWorker<VerifyDoneEvent | ErrorEvent, VerifyReport>({
    base: import.meta.url,
    module: '../../workers/verify.worker.ts',
    request: req,
    what: `verify ${req.dir}`,
    name: 'verify',
    onMessage: (e) => (e.type === 'verify-done' ? { done: e.report } : { error: e.error }),
  });
}
