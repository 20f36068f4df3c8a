/**
 * Inflate worker entry: wiring only. Runs the chunked installer's jobs
 * (src/install/chunked/member-jobs.ts) one at a time and answers each.
 */
import { parentPort } from 'node:worker_threads';
import { serializeError } from '../src/base/errors.ts';
import { runJob } from '../src/install/chunked/member-jobs.ts';
import type { InflateJob, InflateResult } from './inflate-protocol.ts';

const port = parentPort;
if (!port) throw new Error('inflate.worker must run in a worker thread');
port.on('message', (job: InflateJob) => {
  runJob(job).then(
    () => port.postMessage({ id: job.id, ok: true } satisfies InflateResult),
    (err: unknown) => port.postMessage({ id: job.id, ok: false, error: serializeError(err) } satisfies InflateResult),
  );
});
