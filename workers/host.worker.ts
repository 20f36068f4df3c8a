/**
 * The worker host: starts the workers the main thread asks for, so that
 * starting one never blocks the main thread (Node's first `new Worker()` in
 * a process holds its caller ~5 ms; Deno's holds it 45-100 ms, every
 * time). Relays each worker's messages, errors and
 * exit to the main thread, and the main thread's messages and terminations
 * to it. Wiring only: `src/base/worker-host.ts` is the other side.
 */
import { Worker, parentPort } from 'node:worker_threads';
import { serializeError } from '../src/base/errors.ts';
import type { FromHost, ToHost } from './host-protocol.ts';

const port = parentPort;
if (!port) throw new Error('host.worker must run in a worker thread');
const up = (m: FromHost) => port.postMessage(m);
const workers = new Map<number, Worker>();

port.on('message', (m: ToHost) => {
  switch (m.type) {
    case 'spawn': {
      let w: Worker;
      try {
        w = new Worker(new URL(m.url), { workerData: m.workerData, ...(m.resourceLimits ? { resourceLimits: m.resourceLimits } : {}) });
      } catch (err) {
        up({ type: 'error', id: m.id, error: serializeError(err) });
        up({ type: 'exit', id: m.id, code: 1 });
        return;
      }
      workers.set(m.id, w);
      w.on('message', (message: unknown) => up({ type: 'message', id: m.id, message }));
      w.on('error', (err) => up({ type: 'error', id: m.id, error: serializeError(err) }));
      w.on('exit', (code) => {
        workers.delete(m.id);
        up({ type: 'exit', id: m.id, code });
      });
      return;
    }
    case 'post':
      workers.get(m.id)?.postMessage(m.message);
      return;
    case 'terminate':
      void workers.get(m.id)?.terminate();
      return;
  }
});
