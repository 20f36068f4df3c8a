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
 * (the daemon does at boot, so no install pays for it). `prewarmWorker()`
 * has it keep a spare of one worker started and its modules loaded
 * (`worker-request.ts`): the daemon's install worker, so an install starts
 * parsing its archive ~0.2 s sooner. It keeps the process alive only while a
 * worker it started runs (or a prewarm is awaited). If the host itself dies,
 * each of its workers reports an error and an exit, and the next spawn
 * starts a new host (without its spares).
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
  /** `prewarmWorker` calls waiting for their spare to be ready, by url. */
  private readonly readyWaits = new Map<string, Array<() => void>>();

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
    this.reref();
    host.postMessage({ type: 'spawn', id, url: url.href, workerData: o.workerData, ...(o.resourceLimits ? { resourceLimits: o.resourceLimits } : {}) } satisfies ToHost);
    return w;
  }

  /** Asks for a spare of `url`; resolves once it is ready, or could not start, or the host is gone. */
  prewarm(url: URL, resourceLimits: ResourceLimits | undefined): Promise<void> {
    const host = this.start();
    const ready = new Promise<void>((resolve) => {
      const waits = this.readyWaits.get(url.href) ?? [];
      waits.push(resolve);
      this.readyWaits.set(url.href, waits);
    });
    this.reref();
    host.postMessage({ type: 'prewarm', url: url.href, ...(resourceLimits ? { resourceLimits } : {}) } satisfies ToHost);
    return ready;
  }

  /** Referenced while a worker runs or a prewarm is awaited: the host alone keeps no process alive. */
  private reref(): void {
    if (this.live.size + this.readyWaits.size > 0) this.host?.ref();
    else this.host?.unref();
  }

  private settleReady(url?: string): void {
    for (const [u, waits] of this.readyWaits) {
      if (url !== undefined && u !== url) continue;
      this.readyWaits.delete(u);
      for (const w of waits) w();
    }
    this.reref();
  }

  /** Stops the host; the workers it started report an error and an exit (as if it had died). */
  async stop(): Promise<void> {
    const host = this.host;
    if (!host) return;
    this.lost(host, 'was stopped');
    await host.terminate();
  }

  private route(m: FromHost): void {
    if (m.type === 'spare') return this.settleReady(m.url);
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
    this.reref();
  }

  /** The host is gone: its workers went with it. */
  private lost(host: Worker, how: string): void {
    if (this.host !== host) return;
    this.host = undefined;
    const orphans = [...this.live.values()];
    this.live.clear();
    this.settleReady();
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

/**
 * Keeps one spare of this worker started on the host, its modules loaded, for the next `spawnWorker`
 * of the same url and limits (and a new one after each). Resolves when the spare is ready.
 */
export function prewarmWorker(url: URL, o: { resourceLimits?: ResourceLimits } = {}): Promise<void> {
  return host.prewarm(url, o.resourceLimits);
}

/** Stops the host (daemon shutdown, tests): its running workers end with an error and an exit. */
export function stopWorkerHost(): Promise<void> {
  return host.stop();
}
