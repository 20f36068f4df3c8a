/**
 * Install worker entry: wiring only. Takes an InstallRequest as workerData,
 * turns an AbortMessage into an AbortSignal, runs the one-pass pipeline and
 * posts exactly one `done` or `error` at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AbortError, serializeError } from '../src/base/errors.ts';
import { runInstallPipeline } from '../src/install/pipeline.ts';
import type { InstallRequest, MainToWorker, WorkerEvent } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('install.worker must run in a worker thread');
const req = workerData as InstallRequest;
const ac = new AbortController();
const post = (e: WorkerEvent) => port.postMessage(e);

const onMessage = (m: MainToWorker) => {
  if (m?.type === 'abort') ac.abort(new AbortError(m.reason ?? 'Aborted'));
};
port.on('message', onMessage);

runInstallPipeline(req, { signal: ac.signal, post })
  .then(
    (done) => post(done),
    (err: unknown) => post({ type: 'error', jobId: req.jobId, error: serializeError(err) }),
  )
  // Dropping the listener un-refs the port so the thread can end on its own once the last
  // event is out (Deno's parentPort has no close()); the client also terminates it on the final event.
  .finally(() => port.off('message', onMessage));
