/**
 * Workers started off the main thread. The main thread supervises the GPU
 * server and serves the status API; a `new Worker()` there stalls it: Node's
 * first one in a process for ~5 ms, Deno's every one for 45-100 ms (the
 * runtime's start-up for the new thread; the worker's own module runs after
 * the constructor returns). So one long-lived worker host
 * (`workers/host.worker.ts`) starts every worker lander runs, and relays
 * its messages, errors and exit; the main thread only posts a message.
 *
 * The host starts with the first worker, or earlier with `startWorkerHost()`
 * (the daemon does at boot, so no install pays for it). It keeps the process
 * alive only while a worker it started runs. If the host itself dies, each
 * of its workers reports an error and an exit, and the next spawn starts a
 * new host.
 */
import { EventEmitter } from 'node:events';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { deserializeError } from './errors.ts';
import { moduleUrl } from './runtime.ts';
import type { FromHost, ToHost } from '../../workers/host-protocol.ts';

/** What a caller may do with a worker the host started: what `runWorker` needs of a Worker. */
export interface HostedWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  on(name: 'message', fn: (message: unknown) => void): this;
  on(name: 'error', fn: (err: Error) => void): this;
  on(name: 'exit', fn: (code: number) => void): this;
}

class RemoteWorker extends EventEmitter implements HostedWorker {
  private readonly id: number;
  private readonly send: (m: ToHost) => void;

  constructor(id: number, send: (m: ToHost) => void) {
    super();
    this.id = id;
    this.send = send;
  }

  /** Exited, or its host is gone: posts and terminations are no-ops (the host may be dead). */
  gone = false;

  postMessage(message: unknown): void {
    if (!this.gone) this.send({ type: 'post', id: this.id, message });
  }

  terminate(): void {
    if (!this.gone) this.send({ type: 'terminate', id: this.id });
  }
}

class WorkerHost {
  private host: Worker | undefined;
  private readonly live = new Map<number, RemoteWorker>();
  private nextId = 1;

  start(): Worker {
    if (this.host) return this.host;
    const host = new Worker(moduleUrl(import.meta.url, '../../workers/host.worker.ts'));
    host.unref();
    host.on('message', (m: FromHost) => this.route(m));
    host.on('error', (err) => this.lost(host, `failed: ${err.message}`));
    host.on('exit', (code) => this.lost(host, `exited (code ${code})`));
    this.host = host;
    return host;
  }

  spawn(url: URL, o: { workerData?: unknown; resourceLimits?: ResourceLimits }): HostedWorker {
    const host = this.start();
    const id = this.nextId++;
    const w = new RemoteWorker(id, (m) => host.postMessage(m));
    this.live.set(id, w);
    if (this.live.size === 1) host.ref();
    host.postMessage({ type: 'spawn', id, url: url.href, workerData: o.workerData, ...(o.resourceLimits ? { resourceLimits: o.resourceLimits } : {}) } satisfies ToHost);
    return w;
  }

  /** Stops the host; the workers it started report an error and an exit (as if it had died). */
  async stop(): Promise<void> {
    const host = this.host;
    if (!host) return;
    this.lost(host, 'was stopped');
    await host.terminate();
  }

  private route(m: FromHost): void {
    const w = this.live.get(m.id);
    if (!w) return;
    switch (m.type) {
      case 'message': w.emit('message', m.message); return;
      case 'error': w.emit('error', deserializeError(m.error)); return;
      case 'exit':
        this.forget(m.id);
        w.gone = true;
        w.emit('exit', m.code);
    }
  }

  private forget(id: number): void {
    this.live.delete(id);
    if (this.live.size === 0) this.host?.unref();
  }

  /** The host is gone: its workers went with it. */
  private lost(host: Worker, how: string): void {
    if (this.host !== host) return;
    this.host = undefined;
    const orphans = [...this.live.values()];
    this.live.clear();
    for (const w of orphans) {
      w.gone = true;
      if (w.listenerCount('error') > 0) w.emit('error', new Error(`the worker host ${how}`));
      w.emit('exit', 1);
    }
  }
}

const host = new WorkerHost();

/** Starts a worker from the host thread: the caller only posts a message. */
export function spawnWorker(url: URL, o: { workerData?: unknown; resourceLimits?: ResourceLimits } = {}): HostedWorker {
  return host.spawn(url, o);
}

/** Starts the host now (at daemon boot), so the first install does not wait for it or stall on its start. */
export function startWorkerHost(): void {
  host.start();
}

/** Stops the host (daemon shutdown, tests): its running workers end with an error and an exit. */
export function stopWorkerHost(): Promise<void> {
  return host.stop();
}
