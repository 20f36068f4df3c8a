/**
 * Install worker entry: wiring only. Takes an InstallRequest as workerData
 * (or, started as a spare, from the worker host later: it then starts a
 * spare hash worker of its own meanwhile), turns an AbortMessage into an
 * AbortSignal, runs the one-pass pipeline and posts exactly one `done` or
 * `error` at the end.
 */
import { parentPort } from 'node:worker_threads';
import { AbortError, serializeError } from '../src/base/errors.ts';
import { isSpare, onRequest } from '../src/base/worker-request.ts';
import { runInstallPipeline } from '../src/install/pipeline.ts';
import { prewarmHashWorker } from '../src/install/part-hasher.ts';
import type { InstallRequest, MainToWorker, WorkerEvent } from './protocol.ts';

if (!parentPort) throw new Error('install.worker must run in a worker thread');
const port = parentPort;
const spare = isSpare();
onRequest<InstallRequest>(install, spare ? prewarmHashWorker() : undefined);

function install(req: InstallRequest): void {
  const ac = new AbortController();
  const post = (e: WorkerEvent) => port.postMessage(e);

  const onMessage = (m: MainToWorker) => {
    if (m?.type === 'abort') ac.abort(new AbortError(m.reason ?? 'Aborted'));
  };
  port.on('message', onMessage);

  // After an abort, sockets and file handles are torn down while reads and writes are still in flight; an
  // error from one of those that nothing awaits any more must not kill the thread before it has kept the
  // .part and answered (seen under Deno, aborting a segmented download on a loaded machine). Before an
  // abort, a stray error is a bug: it is the install's failure, reported as such.
  const stray = (err: unknown) => {
    if (ac.signal.aborted) {
      post({ type: 'log', level: 'debug', event: 'install.stray-error', fields: { err: serializeError(err) }, msg: 'an error after the abort, from I/O being torn down; ignored' });
      return;
    }
    post({ type: 'error', jobId: req.jobId, error: serializeError(err) });
    process.exit(1);
  };
  process.on('uncaughtException', stray);
  process.on('unhandledRejection', stray);

  runInstallPipeline(req, { signal: ac.signal, post })
    .then(
      (done) => post({ ...done, spareWorker: spare }),
      (err: unknown) => post({ type: 'error', jobId: req.jobId, error: serializeError(err) }),
    )
    // Dropping the listener un-refs the port so the thread can end on its own once the last
    // event is out (Deno's parentPort has no close()); the client also terminates it on the final event.
    .finally(() => port.off('message', onMessage));
}
