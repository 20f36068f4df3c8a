/**
 * Main-thread side of the chunked-install worker: the daemon's main thread
 * only posts the request and reads progress, logs and the result, as for the
 * one pass (measured before: event-loop max 155-160 ms, p99 ~20 ms while the
 * install ran here; its plan alone blocked ~350 ms on a 94,070-member index).
 */
import { runWorker } from '../../base/run-worker.ts';
import type { ChunkedAbortMessage, ChunkedWorkerEvent, ChunkedWorkerRequest } from '../../../workers/chunked-protocol.ts';
import type { ChunkedDone, ChunkedInstallContext, ChunkedInstallRequest } from './chunked-install.ts';
import type { RegistryRangeSourceOptions } from './registry-range-source.ts';

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * Runs one indexed install in a worker thread, from HTTP(S) mirrors or (`registry`) through OCI
 * registries. @throws as runChunkedInstall, rebuilt with class and code
 */
export async function runChunkedInWorker(req: ChunkedInstallRequest, ctx: Omit<ChunkedInstallContext, 'source'>, http: ChunkedWorkerRequest['http'], registry?: RegistryRangeSourceOptions): Promise<ChunkedDone> {
  // `req.sources` come undecoded (reuseSources): the worker decodes the index files itself, off this thread.
  const request: ChunkedWorkerRequest = { req, http, ...(registry ? { registry } : {}) };
  const done = await runWorker<ChunkedWorkerEvent, ChunkedDone>({
    base: import.meta.url,
    module: '../../../workers/chunked.worker.ts',
    request,
    what: `install ${req.component} ${req.version}`,
    name: 'chunked install',
    signal: ctx.signal,
    onAbort(worker, reason) {
      const msg: ChunkedAbortMessage = { type: 'abort', reason };
      worker.postMessage(msg);
    },
    onMessage(e) {
      switch (e.type) {
        case 'progress': ctx.onProgress?.(e.progress); return undefined;
        case 'log': ctx.log?.(e.level, e.event, e.fields, e.msg); return undefined;
        case 'done': return { done: e.done };
        case 'error': return { error: e.error };
      }
    },
  });
  // A Buffer crosses a thread as a plain Uint8Array.
  return { ...done, index: asBuffer(done.index) };
}
