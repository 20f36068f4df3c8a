/**
 * The worker host: starts the workers the main thread asks for, so that
 * starting one never blocks the main thread (Node's first `new Worker()` in
 * a process holds its caller ~5 ms; Deno's holds it 45-100 ms, every
 * time). Relays each worker's messages, errors and
 * exit to the main thread, and the main thread's messages and terminations
 * to it. For a worker it was asked to prewarm, it keeps one spare started
 * (`src/base/worker-request.ts`): a `spawn` of it hands the spare its request
 * instead of starting a thread, and a new spare starts when that one exits.
 * Wiring only: `src/base/worker-host.ts` is the other side.
 */
import { Worker, parentPort, type ResourceLimits } from 'node:worker_threads';
import { serializeError } from '../src/base/errors.ts';
import { isReady, spareData, startMessage } from '../src/base/worker-request.ts';
import type { FromHost, ToHost } from './host-protocol.ts';

const port = parentPort;
if (!port) throw new Error('host.worker must run in a worker thread');
const up = (m: FromHost) => port.postMessage(m);
const workers = new Map<number, Worker>();

interface Want { url: string; resourceLimits?: ResourceLimits }
/** Workers to keep a spare of, and the spares, by url and limits. */
const wanted = new Map<string, Want>();
const spares = new Map<string, { worker: Worker; ready: boolean; unwire(): void }>();
const keyOf = (w: Want) => `${w.url} ${JSON.stringify(w.resourceLimits ?? {})}`;
const options = (w: Want) => (w.resourceLimits ? { resourceLimits: w.resourceLimits } : {});

/** Starts the spare for `key` unless one is there; one that is ready already says so again. */
function startSpare(key: string): void {
  const want = wanted.get(key);
  if (!want) return;
  const have = spares.get(key);
  if (have) {
    if (have.ready) up({ type: 'spare', url: want.url, ready: true });
    return;
  }
  let worker: Worker;
  try {
    worker = new Worker(new URL(want.url), { workerData: spareData(), ...options(want) });
  } catch {
    // The spawn that would have taken it starts its own worker, and reports why it cannot.
    up({ type: 'spare', url: want.url, ready: false });
    return;
  }
  const spare = {
    worker,
    ready: false,
    unwire: () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    },
  };
  const onMessage = (m: unknown) => {
    if (!isReady(m)) return;
    spare.ready = true;
    up({ type: 'spare', url: want.url, ready: true });
  };
  const onError = () => undefined; // an idle spare's failure is nobody's result: it exits, and is dropped
  const onExit = () => {
    if (spares.get(key) !== spare) return;
    spares.delete(key);
    // Not started again here (a module that cannot load would loop): the next spawn's exit does.
    up({ type: 'spare', url: want.url, ready: false });
  };
  worker.on('message', onMessage);
  worker.on('error', onError);
  worker.on('exit', onExit);
  spares.set(key, spare);
}

function spawn(m: Extract<ToHost, { type: 'spawn' }>): void {
  const key = keyOf(m);
  const spare = spares.get(key);
  let w: Worker;
  if (spare) {
    spares.delete(key);
    spare.unwire();
    w = spare.worker;
    w.postMessage(startMessage(m.workerData));
  } else {
    try {
      w = new Worker(new URL(m.url), { workerData: m.workerData, ...options(m) });
    } catch (err) {
      up({ type: 'error', id: m.id, error: serializeError(err) });
      up({ type: 'exit', id: m.id, code: 1 });
      return;
    }
  }
  workers.set(m.id, w);
  // A spare taken before it was ready still says so: that is not the worker's message.
  w.on('message', (message: unknown) => { if (!isReady(message)) up({ type: 'message', id: m.id, message }); });
  w.on('error', (err) => up({ type: 'error', id: m.id, error: serializeError(err) }));
  w.on('exit', (code) => {
    workers.delete(m.id);
    up({ type: 'exit', id: m.id, code });
    startSpare(key); // the next one, now that this one's work is over
  });
}

port.on('message', (m: ToHost) => {
  switch (m.type) {
    case 'spawn':
      return spawn(m);
    case 'prewarm': {
      const key = keyOf(m);
      wanted.set(key, { url: m.url, ...(m.resourceLimits ? { resourceLimits: m.resourceLimits } : {}) });
      return startSpare(key);
    }
    case 'post':
      workers.get(m.id)?.postMessage(m.message);
      return;
    case 'terminate':
      void workers.get(m.id)?.terminate();
      return;
  }
});
