/**
 * The landing logic: installs what the config asks for, swaps the new
 * generation in, restarts the server on it, and rolls back when the new
 * server fails its health check or crash-loops. Landings are serialized.
 * The daemon (watching, API) drives this; `lander run` without a watcher
 * calls `reconcile()` once.
 */
import { EventEmitter } from 'node:events';
import { configSpecs, type ComponentSpec, type Config } from '../config/schema.ts';
import { hasCode, LanderError, serializeError } from '../base/errors.ts';
import { ensureGeneration, installAll, type ComponentOutcome, type InstallResult } from './install-all.ts';
import { entrySatisfies, planLanding } from './planner.ts';
import type { Logger } from '../report/log.ts';
import { JobQueue } from './queue.ts';
import type { Generation } from '../store/state.ts';
import type { Store } from '../store/store.ts';
import { Supervisor } from '../supervise/supervisor.ts';
import { waitForIdle, type IdleWait } from '../supervise/idle-gate.ts';
import { reportEnvironmentFailure } from '../supervise/spawn-environment.ts';
import { clearServerRecord, reapOrphanServer, recordServer } from '../supervise/orphan-server.ts';
import type { ProgressEvent } from '../../workers/protocol.ts';

export interface LanderEvents {
  progress: [component: string, e: ProgressEvent];
  outcome: [o: ComponentOutcome];
  landed: [info: { generation: number; from: number | null; restarted: boolean; durationMs: number }];
  rollback: [info: { from: number; to: number | null; reason: string; bad: Record<string, string> }];
  /** A restart deferred for the idle gate: its start (`wait`), then undefined when the wait is over. */
  'idle-wait': [wait: IdleWait | undefined];
  'reconcile-error': [err: Error];
}

export class Lander extends EventEmitter<LanderEvents> {
  readonly store: Store;
  readonly log: Logger;
  config: Config;
  readonly queue: JobQueue;
  supervisor: Supervisor | undefined;
  #landing: Promise<unknown> = Promise.resolve();
  #stopping = false;
  #recording: Promise<unknown> = Promise.resolve();
  #recordedPid: number | undefined;
  /** Counts reconciles; only the newest may land. */
  #epoch = 0;
  readonly #abort = new AbortController();
  lastErrors: { at: string; error: ReturnType<typeof serializeError> }[] = [];

  constructor(opts: { config: Config; store: Store; log: Logger }) {
    super();
    this.config = opts.config;
    this.store = opts.store;
    this.log = opts.log;
    this.queue = new JobQueue({ concurrency: opts.config.download.concurrency });
    if (opts.config.server) this.#makeSupervisor(opts.config);
  }

  #makeSupervisor(config: Config): void {
    this.supervisor = new Supervisor({ server: config.server!, log: this.log });
    // Remember the running group so a lander that dies without stopping it lets the next one clean up.
    this.supervisor.on('state', (c) => {
      const root = this.store.root;
      let write: (() => Promise<void>) | undefined;
      if (c.to === 'stopped' || c.to === 'failed') {
        this.#recordedPid = undefined;
        write = () => clearServerRecord(root);
      } else if (c.pid !== undefined && c.pid !== this.#recordedPid) {
        const rec = { pid: c.pid, generation: c.generation ?? '?', startedAt: new Date().toISOString() };
        this.#recordedPid = c.pid;
        write = () => recordServer(root, rec);
      }
      if (write) this.#recording = this.#recording.then(write).catch((err) => this.log.warn({ event: 'server.record-failed', err }, 'cannot write server.json'));
    });
    this.supervisor.on('crash-loop', () => {
      void this.#serial(() => this.#onCrashLoop()).catch((err) => this.#recordError(err));
    });
  }

  /** Starts the server from `current`, if there is one and a server is configured. */
  async startServer(): Promise<void> {
    if (this.supervisor) await reapOrphanServer(this.store.root, this.log, this.config.server!.stop.timeout);
    const g = this.store.current();
    if (!this.supervisor || !g) return;
    await this.#serial(async () => {
      if (this.#stopping) return;
      try {
        await this.supervisor!.start(this.store.abs(g.dir), g.id);
        await this.store.setStatus(g.id, 'good');
      } catch (err) {
        // A start cancelled by shutdown says nothing about the generation.
        if (this.#stopping || hasCode(err, 'ERR_ABORTED')) return;
        if (hasCode(err, 'ERR_SERVER_ENVIRONMENT')) return this.#recordError(reportEnvironmentFailure(this.log, g.id, err));
        this.log.error({ event: 'server.start-failed', generation: g.id, err }, 'the server did not become healthy from the current generation');
        const prev = this.store.previousGood();
        if (prev) await this.#rollback(g, prev, (err as Error).message);
        else this.#recordError(err);
      }
    });
  }

  /** The desired components; the daemon replaces this to merge a manifest in. */
  specs: () => ComponentSpec[] = () => configSpecs(this.config);

  /** Installs what is missing and lands it. Resolves with the install result. */
  async reconcile(): Promise<InstallResult> {
    const epoch = ++this.#epoch;
    const result = await installAll({
      config: this.config,
      specs: this.specs(),
      store: this.store,
      log: this.log,
      queue: this.queue,
      signal: this.#abort.signal,
      onProgress: (c, e) => this.emit('progress', c, e),
      onOutcome: (o) => this.emit('outcome', o),
      // A signed manifest is the whole release: never patch a bad version of it with one kept from an earlier manifest.
      noFallback: this.config.manifest?.publicKey !== undefined,
    });
    for (const err of result.errors) if (!hasCode(err, 'ERR_ABORTED')) this.#recordError(err);
    if (result.selection && !this.#stopping) {
      const selection = result.selection;
      await this.#serial(async () => {
        // Superseded while waiting for an earlier landing: a newer reconcile lands instead.
        if (this.#stopping || this.#epoch !== epoch) return;
        let g: Generation;
        try {
          g = await ensureGeneration(this.store, selection, this.log);
        } catch (err) {
          // The components are verified but cannot be combined (a conflict, or links that escape together):
          // nothing lands, the server keeps running, and /status shows why.
          this.log.error({ event: 'generation.failed', components: Object.fromEntries(selection.map((e) => [e.component, e.version])), err }, (err as Error).message);
          this.#recordError(err);
          return;
        }
        const restart = planLanding(selection, this.specs(), this.store.current()).restart || this.supervisor?.state === 'stopped';
        await this.#land(g, restart);
      });
    }
    return result;
  }

  /** Runs `fn` after every earlier landing/rollback has finished. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#landing.then(fn, fn);
    this.#landing = run.catch(() => undefined);
    return run;
  }

  async #land(g: Generation, restart: boolean): Promise<void> {
    const from = this.store.state.current;
    if (from === g.id && (!restart || this.supervisor?.state === 'healthy')) return;
    const t0 = performance.now();
    const sup = this.supervisor;
    if (!sup || !restart) {
      if (from !== g.id) await this.store.swap(g.id);
      if (!sup || sup.state === 'healthy') await this.store.setStatus(g.id, 'good');
      await this.#gc();
      const durationMs = performance.now() - t0;
      this.log.info({ event: 'generation.landed', generation: g.id, from, restarted: false, durationMs: Math.round(durationMs) }, 'new generation is current');
      this.emit('landed', { generation: g.id, from, restarted: false, durationMs });
      return;
    }
    const idle = this.config.server?.restart.idle;
    if (this.config.server?.restart.when === 'idle' && idle && sup.state === 'healthy') {
      this.emit('idle-wait', { generation: g.id, since: new Date().toISOString(), maxDeferralMs: idle.maxDeferral });
      const r = await waitForIdle(idle, { signal: this.#abort.signal }).finally(() => this.emit('idle-wait', undefined));
      this.log.info({ event: 'restart.idle-wait', idle: r.idle, waitedMs: Math.round(r.waitedMs), generation: g.id }, r.idle ? 'server idle; restarting' : 'server still busy after the maximum deferral; restarting anyway');
    }
    if (this.#stopping) return;
    if (from !== g.id) await this.store.swap(g.id);
    try {
      await sup.restartOn(this.store.abs(g.dir), g.id);
    } catch (err) {
      // Shutdown cancelled the start: no verdict on the new generation; the next start health-checks `current`.
      if (this.#stopping || hasCode(err, 'ERR_ABORTED')) return;
      if (hasCode(err, 'ERR_SERVER_ENVIRONMENT')) return this.#recordError(reportEnvironmentFailure(this.log, g.id, err));
      const prev = from !== null && from !== g.id ? this.store.state.generations.find((x) => x.id === from && x.status !== 'bad') : this.store.previousGood();
      await this.#rollback(g, prev ?? this.store.previousGood(), (err as Error).message, err);
      return;
    }
    await this.store.setStatus(g.id, 'good');
    await this.#gc();
    const durationMs = performance.now() - t0;
    this.log.info({ event: 'generation.landed', generation: g.id, from, restarted: true, durationMs: Math.round(durationMs) }, 'new generation is live and healthy');
    this.emit('landed', { generation: g.id, from, restarted: true, durationMs });
  }

  /** Old generations and entries go; entries that the desired specs still want stay (a reconcile may be about to use them). */
  async #gc(): Promise<void> {
    const specs = this.specs();
    const wanted = this.store.state.entries.filter((e) => specs.some((s) => entrySatisfies(e, s)));
    await this.store.gc(this.config.keepGenerations, wanted);
  }

  async #onCrashLoop(): Promise<void> {
    if (this.#stopping) return;
    const g = this.store.current();
    if (!g) return;
    const prev = this.store.previousGood();
    await this.#rollback(g, prev, 'the server crash-looped');
  }

  /**
   * Swaps back from `bad` to `to`, marks the components that differ as bad
   * versions (not retried until the desired version changes) and starts the
   * server there.
   */
  async #rollback(bad: Generation, to: Generation | undefined, reason: string, cause?: unknown): Promise<void> {
    const differing: Record<string, string> = {};
    for (const [name, c] of Object.entries(bad.components)) {
      if (to?.components[name]?.sha256 !== c.sha256) differing[name] = c.version;
    }
    await this.store.setStatus(bad.id, 'bad');
    for (const [name, version] of Object.entries(differing)) await this.store.markBad(name, version);
    const err = new LanderError('ERR_ROLLBACK', `Generation ${bad.id} (${Object.entries(differing).map(([n, v]) => `${n} ${v}`).join(', ')}) failed: ${reason}. ${to ? `Rolled back to generation ${to.id}` : 'No earlier good generation to roll back to; the server stays down'}. These versions will not be retried until an operator runs lander unmark COMPONENT VERSION.`, {
      cause,
      data: { from: bad.id, to: to?.id ?? null, bad: differing },
    });
    this.log.error({ event: 'rollback', from: bad.id, to: to?.id ?? null, bad: differing, reason, err }, err.message);
    this.#recordError(err);
    this.emit('rollback', { from: bad.id, to: to?.id ?? null, reason, bad: differing });
    if (!to) {
      await this.supervisor?.stop();
      return;
    }
    await this.store.swap(to.id);
    if (this.#stopping) return;
    try {
      // restartOn, not start: an operator's rollback finds the server still running (healthy) on the generation it leaves.
      await this.supervisor?.restartOn(this.store.abs(to.dir), to.id);
    } catch (err2) {
      this.log.error({ event: 'rollback.failed', generation: to.id, err: err2 }, 'the previous generation did not become healthy either');
      this.#recordError(err2);
    }
  }

  /** Restarts the server on the current generation (operator's request). */
  async restartServer(): Promise<{ pid?: number; generation?: number | string }> {
    const sup = this.supervisor;
    if (!sup) throw new LanderError('ERR_NO_SERVER', 'Cannot restart the server: no "server" is configured');
    return this.#serial(async () => {
      if (this.#stopping) throw new LanderError('ERR_BUSY', 'Cannot restart the server: lander is shutting down');
      const g = this.store.current();
      if (!g) throw new LanderError('ERR_NO_GENERATION', 'Cannot restart the server: nothing is installed yet');
      await sup.restartOn(this.store.abs(g.dir), g.id);
      return { ...(sup.pid !== undefined ? { pid: sup.pid } : {}), generation: g.id };
    });
  }

  /**
   * Goes back to the previous good generation (operator's request). The
   * versions it leaves are marked bad, or the next reconcile would land them again.
   */
  async rollbackToPrevious(reason: string): Promise<{ from: number | null; to: number }> {
    return this.#serial(async () => {
      const cur = this.store.current();
      const prev = this.store.previousGood();
      if (!cur || !prev) throw new LanderError('ERR_NO_ROLLBACK', 'Cannot roll back: there is no earlier good generation');
      await this.#rollback(cur, prev, reason);
      return { from: cur.id, to: prev.id };
    });
  }

  #recordError(err: unknown): void {
    this.lastErrors.push({ at: new Date().toISOString(), error: serializeError(err) });
    if (this.lastErrors.length > 20) this.lastErrors.shift();
    this.emit('reconcile-error', err as Error);
  }

  /** Aborts installs (keeping resumable downloads), stops the server gracefully. */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    this.queue.abortAll();
    // First stop: cancels a start or restart a landing has in flight, so the landing chain ends soon.
    await this.supervisor?.stop();
    await this.queue.idle().catch(() => undefined);
    await this.#landing;
    // Again, in case a landing step started the server between the first stop and its own #stopping check.
    await this.supervisor?.stop();
    await this.#recording;
  }
}
