/**
 * The one reconcile path, for `lander install` and `lander run` alike:
 * (config, the last good manifest, installed state) become the desired specs
 * once per reconcile; those specs, with their versions, go through the
 * planner and the queue into the store; the resulting generation is landed
 * (swap, and with a supervisor a restart on it, rolled back when the new
 * server fails its health check or crash-loops). Landings are serialized.
 */
import { EventEmitter } from 'node:events';
import type { ComponentSpec, Config } from '../config/schema.ts';
import type { ParsedManifest } from '../config/manifest.ts';
import { hasCode, LanderError, serializeError } from '../base/errors.ts';
import type { JobPhase } from '../install/install-component.ts';
import type { Logger } from '../report/log.ts';
import type { Generation } from '../store/state.ts';
import type { Store } from '../store/store.ts';
import { Supervisor } from '../supervise/supervisor.ts';
import { waitForIdle, type IdleWait } from '../supervise/idle-gate.ts';
import { reportEnvironmentFailure } from '../supervise/spawn-environment.ts';
import { clearServerRecord, reapOrphanServer, recordServer } from '../supervise/orphan-server.ts';
import { desiredSpecs, type DesiredSpecs } from './desired.ts';
import type { InstalledComponent } from './for-machine.ts';
import { readMachineFacts, type MachineFacts } from './machine-facts.ts';
import { installComponents, type ComponentOutcome, type InstallResult } from './install-components.ts';
import { entrySatisfies, planLanding } from './planner.ts';
import { JobQueue } from './queue.ts';
import type { ProgressEvent } from '../../workers/protocol.ts';

export interface ReconcilerEvents {
  progress: [component: string, version: string, e: ProgressEvent];
  phase: [component: string, version: string, phase: JobPhase];
  outcome: [o: ComponentOutcome];
  landed: [info: { generation: number; from: number | null; restarted: boolean; durationMs: number }];
  rollback: [info: { from: number; to: number | null; reason: string; bad: Record<string, string> }];
  /** A restart deferred for the idle gate: its start (`wait`), then undefined when the wait is over. */
  'idle-wait': [wait: IdleWait | undefined];
}

export interface ReconcileResult extends InstallResult {
  /** A manifest is configured but none has been read yet: nothing was planned and `current` is untouched. */
  waiting?: boolean;
  /** The generation this reconcile made (or found) current. */
  generation?: Generation;
  /** `current` moved to `generation` in this reconcile. */
  switched?: boolean;
}

export interface ReconcilerOptions {
  config: Config;
  store: Store;
  log: Logger;
  /**
   * Start, restart and health-check the configured server (`lander run`).
   * Without it (`lander install`) a landing only swaps `current`, and a
   * generation with a server configured stays "new" until a supervisor sees it healthy.
   * @default true
   */
  supervise?: boolean;
}

export class Reconciler extends EventEmitter<ReconcilerEvents> {
  readonly store: Store;
  readonly log: Logger;
  readonly queue: JobQueue;
  readonly supervisor: Supervisor | undefined;
  #config: Config;
  #manifest: ParsedManifest | undefined;
  #desired: DesiredSpecs;
  /** Machine id, OS, arch, NVIDIA driver: what rollouts and variants are decided on. */
  #facts: MachineFacts = { os: process.platform, arch: process.arch };
  #landing: Promise<unknown> = Promise.resolve();
  #stopping = false;
  #recording: Promise<unknown> = Promise.resolve();
  #recordedPid: number | undefined;
  /** Counts reconciles; only the newest may land. */
  #epoch = 0;
  readonly #abort = new AbortController();
  /** Failures of the latest reconciles, newest last (for /status). */
  readonly lastErrors: { at: string; error: ReturnType<typeof serializeError> }[] = [];

  constructor(opts: ReconcilerOptions) {
    super();
    this.#config = opts.config;
    this.store = opts.store;
    this.log = opts.log;
    this.queue = new JobQueue({ concurrency: opts.config.download.concurrency });
    this.#desired = desiredSpecs(opts.config);
    if (opts.config.server && opts.supervise !== false) this.supervisor = this.#makeSupervisor(opts.config);
  }

  get config(): Config {
    return this.#config;
  }

  /** A new config is in force; the next reconcile works from it. */
  setConfig(config: Config): void {
    this.#config = config;
  }

  /** The manifest in force (the last good one), or none; the next reconcile works from it. */
  setManifest(manifest: ParsedManifest | undefined): void {
    this.#manifest = manifest;
  }

  /** Reads (again) the machine facts that rollouts and variants are decided on; at start and when `machineId` changes. */
  async readMachineFacts(): Promise<MachineFacts> {
    const c = this.#config;
    const f = await readMachineFacts(c.machineId !== undefined ? { machineId: c.machineId } : {});
    this.#facts = f;
    this.log.info({ event: 'machine.facts', machineId: f.machineId !== undefined, machineIdSource: f.machineIdSource, os: f.os, arch: f.arch, nvidiaDriver: f.nvidiaDriver, nvidiaDriverSource: f.nvidiaDriverSource, nvidiaDriverError: f.nvidiaDriverError }, 'machine facts for rollouts and variants');
    return f;
  }

  /** What runs now, per component, as rollout and targeting see it (they keep it when the manifest's entry is not for this machine). */
  #installed(): Record<string, InstalledComponent> {
    const installed: Record<string, InstalledComponent> = {};
    for (const [name, c] of Object.entries(this.store.current()?.components ?? {})) {
      const e = this.store.state.entries.find((x) => x.dir === c.entry);
      if (e) installed[name] = { version: c.version, sha256: c.sha256, source: e.source };
    }
    return installed;
  }

  /** A manifest is configured and none has been read yet. */
  get waitingForManifest(): boolean {
    return this.#config.manifest !== undefined && this.#manifest === undefined;
  }

  /** The desired specs the latest reconcile worked from (before the first: the config's own). */
  get desired(): DesiredSpecs {
    return this.#desired;
  }

  #makeSupervisor(config: Config): Supervisor {
    const sup = new Supervisor({ server: config.server!, log: this.log });
    // Remember the running group so a lander that dies without stopping it lets the next one clean up.
    sup.on('state', (c) => {
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
    sup.on('crash-loop', () => {
      void this.#serial(() => this.#onCrashLoop()).catch((err) => this.#recordError(err));
    });
    return sup;
  }

/** Starts the server from `current`, if there is one and a server is configured. */
  async startServer(): Promise<void> {
    if (this.supervisor) await reapOrphanServer(this.store.root, this.log, this.#config.server!.stop.timeout);
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

  /**
   * Computes the desired specs, installs what is missing and lands the
   * result. With a manifest configured and none read yet it does nothing
   * (landing without the manifest's components would drop them).
   */
  async reconcile(): Promise<ReconcileResult> {
    const epoch = ++this.#epoch;
    if (this.waitingForManifest) {
      this.log.info({ event: 'reconcile.waiting', url: this.#config.manifest!.url }, 'no valid manifest yet; keeping the current generation');
      return { components: [], errors: [], waiting: true };
    }
    const config = this.#config;
    const desired = desiredSpecs(config, this.#manifest, { facts: this.#facts, installed: this.#installed() });
    this.#desired = desired;
    const problems = desired.problems.map((p) => new LanderError('ERR_DESIRED', p.message, { data: { component: p.component } }));
    for (const p of desired.problems) this.log.warn({ event: 'desired.problem', ...p }, p.message);
    const result: ReconcileResult = await installComponents({
      config,
      specs: desired.specs,
      store: this.store,
      log: this.log,
      queue: this.queue,
      signal: this.#abort.signal,
      onProgress: (spec, e) => this.emit('progress', spec.name, spec.version, e),
      onPhase: (spec, phase) => this.emit('phase', spec.name, spec.version, phase),
      onOutcome: (o) => this.emit('outcome', o),
      // A signed manifest is the whole release: never patch a bad version of it with one kept from an earlier manifest.
      noFallback: config.manifest?.publicKey !== undefined,
    });
    // A component that cannot even be specified must not be dropped from the live tree by landing the rest.
    if (problems.length > 0) {
      result.errors.push(...problems);
      delete result.selection;
    }
    for (const err of result.errors) if (!hasCode(err, 'ERR_ABORTED')) this.#recordError(err);
    const selection = result.selection;
    if (!selection || this.#stopping) return result;
    await this.#serial(async () => {
      // Superseded while waiting for an earlier landing: a newer reconcile lands instead.
      if (this.#stopping || this.#epoch !== epoch) return;
      let g: Generation;
      try {
        g = await this.store.ensureGeneration(selection);
      } catch (err) {
        // The components are verified but cannot be combined (a conflict, or links that escape together):
        // nothing lands, the server keeps running, and /status shows why.
        this.log.error({ event: 'generation.failed', components: Object.fromEntries(selection.map((e) => [e.component, e.version])), err }, (err as Error).message);
        this.#recordError(err);
        result.errors.push(err as Error);
        return;
      }
      const before = this.store.state.current;
      const restart = planLanding(selection.map((s) => s.entry), desired.specs, this.store.current()).restart || this.supervisor?.state === 'stopped';
      await this.#land(g, restart, desired.specs);
      result.generation = g;
      result.switched = before !== this.store.state.current && this.store.state.current === g.id;
    });
    return result;
  }

  /** Runs `fn` after every earlier landing/rollback has finished. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#landing.then(fn, fn);
    this.#landing = run.catch(() => undefined);
    return run;
  }

  async #land(g: Generation, restart: boolean, specs: ComponentSpec[]): Promise<void> {
    const from = this.store.state.current;
    if (from === g.id && (!restart || this.supervisor?.state === 'healthy')) return;
    const t0 = performance.now();
    const sup = this.supervisor;
    if (!sup || !restart) {
      if (from !== g.id) await this.store.swap(g.id);
      // Without a supervisor nobody can vouch for a server: its generation stays "new" until `lander run` sees it healthy.
      if (sup ? sup.state === 'healthy' : !this.#config.server) await this.store.setStatus(g.id, 'good');
      await this.#gc(specs);
      const durationMs = performance.now() - t0;
      this.log.info({ event: 'generation.landed', generation: g.id, from, restarted: false, durationMs: Math.round(durationMs) }, 'new generation is current');
      this.emit('landed', { generation: g.id, from, restarted: false, durationMs });
      return;
    }
    const idle = this.#config.server?.restart.idle;
    if (this.#config.server?.restart.when === 'idle' && idle && sup.state === 'healthy') {
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
    await this.#gc(specs);
    const durationMs = performance.now() - t0;
    this.log.info({ event: 'generation.landed', generation: g.id, from, restarted: true, durationMs: Math.round(durationMs) }, 'new generation is live and healthy');
    this.emit('landed', { generation: g.id, from, restarted: true, durationMs });
  }

  /**
   * Old generations and entries go; entries that the desired specs still want stay (a reconcile may
   * be about to use them). Downloads go too, once a generation has landed: the desired state is
   * installed, so a `.part` left is for a version no longer wanted, unless an install is using it,
   * a spec pins its digest, or it came from a URL the latest desired state names (an edit back to
   * it while this generation landed: queued, not yet at its digest).
   */
  async #gc(specs: ComponentSpec[]): Promise<void> {
    const wanted = this.store.state.entries.filter((e) => specs.some((s) => entrySatisfies(e, s)));
    const pinned = new Set(specs.flatMap((s) => (s.sha256 ? [s.sha256] : [])));
    const urls = new Set([...specs, ...this.#desired.specs].flatMap((s) => s.urls));
    await this.store.gc(this.#config.keepGenerations, wanted, { keep: pinned, urls });
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
