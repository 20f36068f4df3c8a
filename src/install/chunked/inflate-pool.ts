/**
 * A pool of inflate workers (workers/inflate.worker.ts), sized by
 * `os.availableParallelism()` unless told otherwise: jobs queue, each goes
 * to the next idle worker, and the promise of each settles with its answer.
 * Member bytes are transferred, not copied.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { LanderError, deserializeError } from '../../base/errors.ts';
import { moduleUrl } from '../../base/runtime.ts';
import type { InflateJob, InflateResult } from '../../../workers/inflate-protocol.ts';

type Job = InflateJob extends infer J ? (J extends { id: number } ? Omit<J, 'id'> : never) : never;

export class InflatePool {
  readonly size: number;
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { job: InflateJob; resolve(): void; reject(e: Error): void }[] = [];
  private readonly pending = new Map<number, { resolve(): void; reject(e: Error): void; worker: Worker }>();
  private nextId = 1;
  private failure: Error | undefined;

  /** @param size workers; @default os.availableParallelism() (LANDER_INFLATE_WORKERS overrides, for the bench) */
  constructor(size?: number) {
    const env = Number(process.env.LANDER_INFLATE_WORKERS);
    this.size = Math.max(1, Math.min(64, size ?? (Number.isInteger(env) && env > 0 ? env : os.availableParallelism())));
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(moduleUrl(import.meta.url, '../../../workers/inflate.worker.ts'));
      w.on('message', (r: InflateResult) => this.answer(w, r));
      w.on('error', (err) => this.die(new LanderError('ERR_WORKER_FAILED', `Cannot install: an inflate worker failed: ${err.message}`, { cause: err })));
      w.on('exit', (code) => this.die(new LanderError('ERR_WORKER_EXIT', `Cannot install: an inflate worker exited (code ${code})`, { data: { exitCode: code } })));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  run(job: Job): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const full = { ...job, id: this.nextId++ } as InflateJob;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ job: full, resolve, reject });
      this.pump();
    });
  }

  /** Jobs waiting for a worker: callers hold back fetching while it is long (flat memory). */
  get backlog(): number {
    return this.queue.length;
  }

  /** Resolves once at most `n` jobs wait for a worker (or the pool failed). */
  async below(n: number): Promise<void> {
    while (this.queue.length > n && !this.failure) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private readonly waiters: (() => void)[] = [];

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const q = this.queue.shift()!;
      this.pending.set(q.job.id, { resolve: q.resolve, reject: q.reject, worker: w });
      const transfer = q.job.type === 'member' && q.job.gz.byteOffset === 0 && q.job.gz.byteLength === q.job.gz.buffer.byteLength ? [q.job.gz.buffer as ArrayBuffer] : [];
      w.postMessage(q.job, transfer);
    }
  }

  private answer(w: Worker, r: InflateResult): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    this.idle.push(w);
    if (r.ok) p.resolve();
    else p.reject(deserializeError(r.error));
    this.pump();
    for (const w of this.waiters.splice(0)) w();
  }

  private die(err: Error): void {
    if (this.closed) return;
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.reject(err);
    for (const w of this.waiters.splice(0)) w();
  }

  private closed = false;

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
