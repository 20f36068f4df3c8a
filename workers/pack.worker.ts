/**
 * Pack worker entry: wiring only. Writes one component's archive (reading,
 * tar, gzip, SHA-256) off the main thread and posts exactly one `done` or
 * `error` at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AbortError, serializeError } from '../src/base/errors.ts';
import { writeTarGz } from '../src/pack/pack-dir.ts';
import type { PackRequest, PackWorkerEvent } from './pack-protocol.ts';

const port = parentPort;
if (!port) throw new Error('pack.worker must run in a worker thread');
const req = workerData as PackRequest;
const ac = new AbortController();
const post = (e: PackWorkerEvent) => port.postMessage(e);
const onMessage = (m: { type?: string; reason?: string }) => {
  if (m?.type === 'abort') ac.abort(new AbortError(m.reason ?? 'Aborted'));
};
port.on('message', onMessage);

let last = 0;
writeTarGz(req.sourceDir, req.entries, req.outFile, {
  level: req.level,
  mtime: new Date(req.mtime * 1000),
  signal: ac.signal,
  ...(req.chunked ? { chunked: req.chunked } : {}),
  onBytes: (bytes) => {
    const now = performance.now();
    if (now - last < (req.progressIntervalMs ?? 100)) return;
    last = now;
    post({ type: 'progress', component: req.component, bytes });
  },
})
  .then(
    (r) => post({ type: 'done', component: req.component, ...r }),
    (err: unknown) => post({ type: 'error', component: req.component, error: serializeError(err) }),
  )
  // As in install.worker.ts: dropping the listener lets the thread end once the last event is out.
  .finally(() => port.off('message', onMessage));
