/**
 * Chunked-install worker entry: wiring only. Takes a ChunkedWorkerRequest as
 * workerData, turns an abort message into an AbortSignal, runs the indexed
 * install with an HTTP range source (or, for an `oci://` component, one
 * through its registries) and posts exactly one `done` or `error`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AbortError, serializeError } from '../src/base/errors.ts';
import { runChunkedInstall } from '../src/install/chunked/chunked-install.ts';
import { httpRangeSource } from '../src/install/chunked/range-source.ts';
import { registryRangeSource } from '../src/install/chunked/registry-range-source.ts';
import { decodeSources } from '../src/install/chunked/store-sources.ts';
import type { ChunkedAbortMessage, ChunkedWorkerEvent, ChunkedWorkerRequest } from './chunked-protocol.ts';

const port = parentPort;
if (!port) throw new Error('chunked.worker must run in a worker thread');
const { req, http, registry } = workerData as ChunkedWorkerRequest;
const ac = new AbortController();
const post = (e: ChunkedWorkerEvent) => port.postMessage(e);
const onMessage = (m: ChunkedAbortMessage) => {
  if (m?.type === 'abort') ac.abort(new AbortError(m.reason ?? 'Aborted'));
};
port.on('message', onMessage);

runChunkedInstall({ ...req, sources: decodeSources(req.sources) }, {
  signal: ac.signal,
  source: registry ? registryRangeSource(registry) : httpRangeSource(http),
  onProgress: (progress) => post({ type: 'progress', progress }),
  log: (level, event, fields, msg) => post({ type: 'log', level, event, fields, msg }),
})
  .then(
    (done) => post({ type: 'done', done }),
    (err: unknown) => post({ type: 'error', error: serializeError(err) }),
  )
  .finally(() => port.off('message', onMessage));
