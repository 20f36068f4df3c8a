/**
 * A worker's request, from its `workerData`, or later, for a spare: a worker
 * started ahead of need, before anyone has work for it, so that the thread's
 * start-up and its modules (Node ~70 ms, Deno 45-100 ms for the thread, then
 * ~100 ms of modules for the install worker) are paid while lander is idle
 * instead of at the start of an install. A spare is started with
 * `spareData()` as its workerData; it says it is ready (its modules are
 * loaded) with a `ready` message, and gets its request with one `start`
 * message (`startMessage`). Both sides: the worker host
 * (`workers/host.worker.ts`) and the install worker's hash worker
 * (`part-hasher.ts`) start spares; worker entries call `onRequest`.
 */
import { parentPort, workerData } from 'node:worker_threads';

const SPARE = 'lander:spare';

type SpareMessage = { [SPARE]: 'ready' } | { [SPARE]: 'start'; request: unknown };

/** The workerData of a spare. */
export function spareData(): unknown {
  return { [SPARE]: true };
}

/** Whether this thread was started as a spare (its request comes later). */
export function isSpare(data: unknown = workerData): boolean {
  return kindOf(data) === true;
}

/** The message that hands a spare its request. */
export function startMessage(request: unknown): SpareMessage {
  return { [SPARE]: 'start', request };
}

/** A spare protocol message's kind (`ready`, `start`), or undefined for any other message. */
function kindOf(m: unknown): unknown {
  return typeof m === 'object' && m !== null ? (m as Record<string, unknown>)[SPARE] : undefined;
}

/** Whether a message from a spare says it is ready. */
export function isReady(m: unknown): boolean {
  return kindOf(m) === 'ready';
}

/**
 * Calls `start` with this worker's request: its workerData at once, or, for a spare, the request of
 * the `start` message, after telling the parent it is ready (once `ready`, when given, settles: a
 * spare of its own). `start` runs inside the delivery of that message, so listeners it adds see
 * every message after it (an abort right behind the start).
 */
export function onRequest<T>(start: (request: T) => void, ready?: Promise<unknown>): void {
  if (!isSpare()) return start(workerData as T);
  const port = parentPort!;
  const first = (m: unknown) => {
    if (kindOf(m) !== 'start') return;
    port.off('message', first);
    start((m as { request: T }).request);
  };
  port.on('message', first);
  const say = () => port.postMessage({ [SPARE]: 'ready' } satisfies SpareMessage);
  if (ready) void ready.then(say, say);
  else say();
}
