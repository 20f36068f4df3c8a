/**
 * Messages between the main thread and the worker host
 * (`src/base/worker-host.ts`, `workers/host.worker.ts`). Each worker the host
 * starts has an `id`; its messages, errors and exit come back under it.
 * A spare has no id until a `spawn` takes it.
 */
import type { ResourceLimits } from 'node:worker_threads';
import type { SerializedError } from '../src/base/errors.ts';

export type ToHost =
  | { type: 'spawn'; id: number; url: string; workerData: unknown; resourceLimits?: ResourceLimits }
  /** Keep one spare of this worker started ahead of need (`src/base/worker-request.ts`); `spawn`s with the same url and limits take it. */
  | { type: 'prewarm'; url: string; resourceLimits?: ResourceLimits }
  | { type: 'post'; id: number; message: unknown }
  | { type: 'terminate'; id: number };

export type FromHost =
  | { type: 'message'; id: number; message: unknown }
  | { type: 'error'; id: number; error: SerializedError }
  | { type: 'exit'; id: number; code: number }
  /** A spare of `url` has loaded its modules and waits for a request (`ready`), or could not start or died idle. */
  | { type: 'spare'; url: string; ready: boolean };
