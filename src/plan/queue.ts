/**
 * Component install jobs on a p-queue: one job per component at a time; a
 * request for the version already queued or running joins that job; a request
 * for another version aborts the older job and replaces it.
 */
import PQueue from 'p-queue';
import { AbortError } from '../base/errors.ts';

export interface JobRequest<T> {
  component: string;
  /** Identifies what the job produces (e.g. version + digest source); equal keys join. */
  key: string;
  /** Higher runs first among waiting jobs. */
  priority?: number;
  run(signal: AbortSignal): Promise<T>;
}

interface Job<T> {
  key: string;
  controller: AbortController;
  promise: Promise<T>;
}

export interface JobQueueOptions {
  /** Jobs running at once. @default 2 */
  concurrency?: number;
}

export class JobQueue {
  readonly #queue: PQueue;
  readonly #jobs = new Map<string, Job<unknown>>();

  constructor(opts: JobQueueOptions = {}) {
    this.#queue = new PQueue({ concurrency: opts.concurrency ?? 2 });
  }

  /** Starts (or joins) the job for `req.component`. */
  submit<T>(req: JobRequest<T>): Promise<T> {
    const existing = this.#jobs.get(req.component);
    if (existing && existing.key === req.key && !existing.controller.signal.aborted) return existing.promise as Promise<T>;
    existing?.controller.abort(new AbortError(`Superseded: ${req.component} is now wanted at ${req.key}`, { data: { component: req.component, key: existing.key } }));
    const controller = new AbortController();
    // The previous job of this component must finish (and release its files) before the new one starts.
    const previous = existing?.promise.catch(() => undefined);
    // The signal goes to the job, not to p-queue: p-queue would settle an aborted task at once and
    // count it done while it still runs (a commit, a log line), so idle() and a shutdown would not
    // wait for it. A job aborted while queued throws as soon as its turn comes.
    const promise = this.#queue.add(
      async () => {
        await previous;
        controller.signal.throwIfAborted();
        return req.run(controller.signal);
      },
      { priority: req.priority ?? 0 },
    ) as Promise<T>;
    const job: Job<T> = { key: req.key, controller, promise };
    this.#jobs.set(req.component, job as Job<unknown>);
    const forget = () => {
      if (this.#jobs.get(req.component) === (job as Job<unknown>)) this.#jobs.delete(req.component);
    };
    promise.then(forget, forget);
    return promise;
  }

  abort(component: string, reason = 'aborted'): void {
    this.#jobs.get(component)?.controller.abort(new AbortError(`Cannot finish ${component}: ${reason}`, { data: { component } }));
  }

  abortAll(reason = 'shutting down'): void {
    for (const c of [...this.#jobs.keys()]) this.abort(c, reason);
  }

  /** Resolves when nothing is queued or running. */
  async idle(): Promise<void> {
    await this.#queue.onIdle();
  }

  get size(): number {
    return this.#jobs.size;
  }
}
