/**
 * The long-running service: watches the config (and a release manifest),
 * reconciles on every change through the Reconciler, which supervises the
 * server; serves the status API. Implements DaemonControl for the API.
 */
import { EventEmitter } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { parseConfig, type Config } from '../config/schema.ts';
import { loadConfigFile } from '../config/load.ts';
import { watchConfig } from '../config/watch.ts';
import type { ComponentStatus, DaemonControl, DaemonEvent, DaemonHealth, DaemonStatus } from '../report/daemon-model.ts';
import { hasCode, LanderError, type ConfigError } from '../base/errors.ts';
import { Reconciler } from '../plan/reconciler.ts';
import type { Logger } from '../report/log.ts';
import type { ManifestPoller } from '../config/manifest-poller.ts';
import { manifestPoller } from '../plan/manifest-source.ts';
import { LanderMetrics } from '../report/metrics.ts';
import { eventLoopDelayIncludesInterval, runtimeName } from '../base/runtime.ts';
import { startWorkerHost } from '../base/worker-host.ts';
import { prewarmInstallWorker } from '../install/worker-client.ts';
import { Store } from '../store/store.ts';
import { startApi } from '../report/api.ts';
import { assessHealth } from '../report/daemon-health.ts';
import { SystemdNotifier } from '../report/systemd-notify.ts';
import type { IdleWait } from '../supervise/idle-gate.ts';
import { readToken } from './read-token.ts';

export const LANDER_VERSION = '0.1.0';
const ELD_RESOLUTION_MS = 10;

export interface DaemonOptions {
  configPath: string;
  log: Logger;
}

type Job = NonNullable<ComponentStatus['job']>;

export class Daemon implements DaemonControl {
  readonly log: Logger;
  readonly configPath: string;
  readonly metrics = new LanderMetrics();
  /** The main thread's responsiveness, which the install workers exist to protect; reported in /metrics. */
  readonly #eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  readonly #events = new EventEmitter<{ event: [DaemonEvent] }>();
  readonly #startedAt = new Date().toISOString();
  config!: Config;
  store!: Store;
  reconciler!: Reconciler;
  #configLoadedAt = '';
  #lastInvalid: DaemonStatus['config']['lastInvalid'];
  #poller: ManifestPoller | undefined;
  #watcher: { reload(): Promise<void>; close(): Promise<void> } | undefined;
  #api: { close(): Promise<void>; socketPath: string; tcpPort?: number } | undefined;
  #jobs = new Map<string, Job>();
  #downloaded = new Map<string, number>();
  #lastCheckAt: string | undefined;
  #reconciling: Promise<unknown> = Promise.resolve();
  #stopped = false;
  /** Last sign of life of each job in flight (ms since the epoch), for the stuck-job check. */
  #jobTouched = new Map<string, number>();
  /** Desired versions already announced as skipped for being bad (one 'bad' event each). */
  #skipSaid = new Set<string>();
  /** Components the last reconcile could not bring to their desired version: name → why (for /healthz). */
  #failing: Record<string, string> = {};
  /** A restart deferred for the idle gate, while it waits. */
  #idleWait: IdleWait | undefined;
  readonly #notify: SystemdNotifier;

  private constructor(opts: DaemonOptions) {
    this.log = opts.log;
    this.configPath = opts.configPath;
    this.#eld.enable();
    // First: it takes NOTIFY_SOCKET out of the environment before any server is spawned.
    this.#notify = new SystemdNotifier({ log: opts.log });
  }

  /** Loads the config, takes the root's lock, starts the API, the server, the watchers, and a first reconcile. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    // Workers start from the host thread: starting it now keeps its own start off every install, and
    // a spare install worker waits there, its modules loaded, for the first install.
    startWorkerHost();
    void prewarmInstallWorker();
    // The watcher compares later saves with exactly the text loaded here.
    const text = await readFile(opts.configPath, 'utf8').catch(() => undefined);
    d.config = text === undefined ? await loadConfigFile(opts.configPath) : parseConfig(text, opts.configPath);
    d.#configLoadedAt = new Date().toISOString();
    d.store = await Store.open(d.config.root, d.log);
    try {
      d.reconciler = new Reconciler({ config: d.config, store: d.store, log: d.log });
      await d.reconciler.readMachineFacts();
      d.#wire();
      d.#api = await startApi({
        control: d,
        socketPath: d.config.api.socket ?? path.join(d.config.root, 'lander.sock'),
        ...(d.config.api.tcp ? { tcp: { host: d.config.api.tcp.host, port: d.config.api.tcp.port, token: await readToken(d.config.api.tcp.tokenFile) } } : {}),
        log: d.log,
      });
      d.#watcher = watchConfig(opts.configPath, {
        log: d.log,
        onConfig: (c) => d.#applyConfig(c),
        onInvalid: (err) => d.#rejectConfig(err),
        ...(text !== undefined ? { initialText: text } : {}),
      });
      d.#startPoller();
      d.log.info({ event: 'daemon.ready', root: d.config.root, socket: d.#api.socketPath, tcpPort: d.#api.tcpPort }, 'lander daemon ready');
      void d.#kickoff();
      return d;
    } catch (err) {
      await d.stop();
      throw err;
    }
  }

  get apiInfo(): { socketPath: string; tcpPort?: number } | undefined {
    return this.#api;
  }

  async #kickoff(): Promise<void> {
    await this.reconciler.startServer();
    if (this.reconciler.waitingForManifest && this.#poller) await this.#poller.pollNow();
    this.#reconcile();
    if (this.#stopped) return;
    void this.#notify.ready(this.#statusLine());
    this.#notify.startWatchdog(() => {
      const h = this.health();
      return h.checks.jobs.ok ? undefined : { reason: 'job stuck', stuck: h.checks.jobs.stuck };
    });
  }

  /** systemd's STATUS= line: what is live. */
  #statusLine(prefix?: string): string {
    const g = this.store.current();
    const live = g ? `generation ${g.id} (${Object.entries(g.components).map(([n, c]) => `${n} ${c.version}`).join(', ')})` : 'nothing installed yet';
    return `${prefix ? `${prefix}; ` : ''}${live}, server ${this.reconciler.supervisor?.state ?? 'none'}`;
  }

  #wire(): void {
    const l = this.reconciler;
    l.on('phase', (component, version, phase) => {
      const job = this.#jobs.get(component);
      // A new version's job starts afresh; the same version moves on to its next phase.
      const same = job?.version === version;
      this.#jobs.set(component, { version, phase, bytes: same ? job.bytes : 0, ...(same && job.total !== undefined ? { total: job.total } : {}), rate: same ? job.rate : 0, startedAt: same ? job.startedAt : new Date().toISOString() });
    });
    l.on('progress', (component, version, e) => {
      const job = this.#jobs.get(component);
      this.#jobTouched.set(component, Date.now());
      const startedAt = job?.version === version ? job.startedAt : new Date().toISOString();
      this.#jobs.set(component, { version, phase: 'download', bytes: e.bytes, ...(e.total !== undefined ? { total: e.total } : {}), rate: e.rate, connections: e.connections, startedAt, ...(e.reusedBytes !== undefined ? { reusedBytes: e.reusedBytes } : {}) });
      this.metrics.downloadConnections(component, e.connections);
      const prev = this.#downloaded.get(component) ?? 0;
      if (e.downloadedBytes > prev) this.metrics.bytesDownloaded(component, e.downloadedBytes - prev);
      this.#downloaded.set(component, e.downloadedBytes);
      // A chunked install knows what it reuses up front: counted once, with its first progress event.
      if (e.reusedBytes !== undefined && job?.reusedBytes === undefined) this.metrics.bytesReused(component, e.reusedBytes);
      this.#emit({ type: 'progress', component, version, bytes: e.bytes, ...(e.total !== undefined ? { total: e.total } : {}), downloadedBytes: e.downloadedBytes, rate: e.rate, connections: e.connections, extractedBytes: e.extractedBytes, ...(e.reusedBytes !== undefined ? { reusedBytes: e.reusedBytes } : {}) });
    });
    l.on('outcome', (o) => {
      this.metrics.downloadConnections(o.component, 0);
      this.#jobs.delete(o.component);
      this.#jobTouched.delete(o.component);
      this.#downloaded.delete(o.component);
      if (o.status === 'installed' || o.status === 'failed') {
        const aborted = o.error && (o.error as LanderError).code === 'ERR_ABORTED';
        this.metrics.installFinished(o.component, o.status === 'installed', (o.durationMs ?? 0) / 1000);
        this.#emit({ type: 'install', component: o.component, version: o.version, status: aborted ? 'aborted' : o.status === 'installed' ? 'verified' : 'failed', ...(o.error ? { error: o.error.message } : {}) });
      }
    });
    l.on('idle-wait', (w) => {
      this.#idleWait = w;
      this.#emit(w ? { type: 'idle-wait', status: 'waiting', generation: w.generation, maxDeferralMs: w.maxDeferralMs } : { type: 'idle-wait', status: 'done' });
    });
    l.on('landed', (info) => {
      this.metrics.generation(info.generation);
      for (const [name, c] of Object.entries(this.store.current()?.components ?? {})) this.metrics.componentVersion(name, c.version);
      if (info.restarted) this.metrics.serverRestarted('update');
      void this.#notify.status(this.#statusLine('landed'));
      this.#emit({ type: 'landed', ...info });
    });
    l.on('rollback', (info) => {
      this.metrics.rollback();
      void this.#notify.status(this.#statusLine(`rolled back from generation ${info.from}`));
      this.#emit({ type: 'rollback', ...info });
    });
    l.supervisor?.on('state', (c) => {
      this.metrics.serverUp(c.to === 'healthy');
      this.#emit({ type: 'server.state', from: c.from, to: c.to, ...(c.pid !== undefined ? { pid: c.pid } : {}), ...(c.generation !== undefined ? { generation: c.generation } : {}) });
    });
    const cur = this.store.current();
    if (cur) {
      this.metrics.generation(cur.id);
      for (const [name, c] of Object.entries(cur.components)) this.metrics.componentVersion(name, c.version);
    }
  }

  #emit(e: DaemonEvent): void {
    this.#events.emit('event', e);
  }

  /** Starts a reconcile now. A newer one aborts the jobs of versions it no longer wants and lands instead. */
  #reconcile(): void {
    if (this.#stopped) return;
    // Waiting for a manifest, the reconciler keeps the current generation and says so.
    if (!this.reconciler.waitingForManifest) this.#lastCheckAt = new Date().toISOString();
    const run = this.reconciler.reconcile().then(
      (r) => {
        // An aborted job (superseded, shutting down) is no failure; everything else that failed makes lander unhealthy until it installs.
        this.#failing = Object.fromEntries(r.components.filter((o) => o.status === 'failed' && !hasCode(o.error, 'ERR_ABORTED')).map((o) => [o.component, o.error?.message ?? `${o.component} ${o.version} failed`]));
        // A component that cannot even be specified (no version, URL or digest; no variant fits) fails too.
        for (const e of r.errors) if (e instanceof LanderError && e.code === 'ERR_DESIRED') this.#failing[String(e.data.component)] = e.message;
        for (const s of this.reconciler.desired.specs) {
          const key = `${s.name}@${s.version}`;
          if (!this.store.isBad(s.name, s.version) || this.#skipSaid.has(key)) continue;
          this.#skipSaid.add(key);
          this.#emit({ type: 'bad', component: s.name, version: s.version, action: 'skipped' });
        }
        if (r.errors.length > 0) this.log.warn({ event: 'reconcile.incomplete', errors: r.errors.map((e) => (e as LanderError).code ?? e.message) }, 'some components could not be installed; the server keeps running on the current generation');
      },
      (err) => this.log.error({ event: 'reconcile.failed', err }, (err as Error).message),
    );
    this.#reconciling = Promise.all([this.#reconciling, run]);
  }

  #applyConfig(c: Config): void {
    if (c.root !== this.config.root) {
      this.log.error({ event: 'config.root-changed', from: this.config.root, to: c.root }, 'the root cannot change while lander runs; restart lander to use the new root. Keeping the rest of the change.');
      c = { ...c, root: this.config.root };
    }
    const manifestChanged = JSON.stringify(c.manifest) !== JSON.stringify(this.config.manifest);
    const idChanged = c.machineId !== this.config.machineId;
    this.config = c;
    this.reconciler.setConfig(c);
    if (idChanged) {
      void this.reconciler.readMachineFacts().then(() => this.#reconcile(), (err) => this.log.error({ event: 'reconcile.failed', err }, (err as Error).message));
    }
    this.#configLoadedAt = new Date().toISOString();
    this.#lastInvalid = undefined;
    this.#emit({ type: 'config', status: 'loaded' });
    if (manifestChanged) {
      this.#poller?.stop();
      this.reconciler.setManifest(undefined);
      const poller = this.#startPoller();
      // The new manifest decides what to reconcile to; without one, the config alone does.
      if (poller) void poller.pollNow().then(() => this.#reconcile());
      else this.#reconcile();
      return;
    }
    this.#reconcile();
  }

  #rejectConfig(err: ConfigError): void {
    const issues = err.issues.length > 0 ? err.issues : [{ path: '(file)', message: err.message }];
    this.#lastInvalid = { at: new Date().toISOString(), issues };
    this.#emit({ type: 'config', status: 'invalid', issues });
  }

  #startPoller(): ManifestPoller | undefined {
    this.#poller = manifestPoller({
      config: this.config,
      store: this.store,
      log: this.log,
      onManifest: (parsed) => {
        this.reconciler.setManifest(parsed);
        this.#reconcile();
      },
    });
    this.#poller?.start();
    return this.#poller;
  }

  // ---- DaemonControl ----

  status(): DaemonStatus {
    const cur = this.store.current();
    const components: Record<string, ComponentStatus> = {};
    const desired = this.reconciler.desired.specs;
    const names = new Set([...desired.map((s) => s.name), ...Object.keys(cur?.components ?? {})]);
    const notes = this.reconciler.desired.notes;
    for (const n of notes) names.add(n.component);
    for (const name of names) {
      const d = desired.find((s) => s.name === name);
      const c = cur?.components[name];
      const job = this.#jobs.get(name);
      const note = notes.find((n) => n.component === name);
      components[name] = {
        ...(d ? { desired: d.version } : {}),
        ...(note ? { note: note.message } : {}),
        ...(c ? { installed: c.version, sha256: c.sha256 } : {}),
        ...(job ? { job } : {}),
        bad: this.store.state.bad[name] ?? [],
      };
    }
    const sup = this.reconciler.supervisor;
    const info = sup?.info();
    return {
      version: LANDER_VERSION,
      pid: process.pid,
      runtime: runtimeName,
      startedAt: this.#startedAt,
      root: this.config.root,
      configPath: this.configPath,
      config: { loadedAt: this.#configLoadedAt, ...(this.#lastInvalid ? { lastInvalid: this.#lastInvalid } : {}) },
      ...(this.#poller ? { manifest: this.#poller.status() } : {}),
      components,
      current: this.store.state.current,
      generations: this.store.state.generations.map((g) => ({ id: g.id, status: g.status, createdAt: g.createdAt, components: Object.fromEntries(Object.entries(g.components).map(([n, c]) => [n, c.version])) })),
      server: sup
        ? {
          state: sup.state, ...(info?.pid !== undefined ? { pid: info.pid } : {}), ...(info?.generation !== undefined ? { generation: info.generation } : {}), ...(info?.since ? { since: info.since } : {}), ...(info?.restarts !== undefined ? { restarts: info.restarts } : {}),
          ...(this.#idleWait ? { restartDeferred: { ...this.#idleWait, waitedMs: Date.now() - Date.parse(this.#idleWait.since) } } : {}),
        }
        : { state: 'none' },
      ...(this.#lastCheckAt ? { lastCheckAt: this.#lastCheckAt } : {}),
      lastErrors: this.reconciler.lastErrors,
    };
  }

  health(): DaemonHealth {
    return assessHealth({
      now: Date.now(),
      configLoadedAt: this.#configLoadedAt,
      ...(this.#lastInvalid ? { lastInvalid: this.#lastInvalid } : {}),
      ...(this.#lastCheckAt ? { lastCheckAt: this.#lastCheckAt } : {}),
      jobs: Object.fromEntries(this.#jobTouched),
      download: this.config.download,
      server: this.reconciler.supervisor?.state ?? 'none',
      installed: this.store.state.current !== null,
      failing: this.#failing,
    });
  }

  async check(): Promise<{ queued: boolean }> {
    await this.#watcher?.reload();
    if (this.#poller) await this.#poller.pollNow();
    this.#reconcile();
    return { queued: true };
  }

  async restart(): Promise<{ pid?: number; generation?: number | string }> {
    const r = await this.reconciler.restartServer();
    this.metrics.serverRestarted('operator');
    return r;
  }

  async rollback(): Promise<{ from: number | null; to: number }> {
    return this.reconciler.rollbackToPrevious('operator asked for a rollback');
  }

  async unmark(component: string, version: string): Promise<{ cleared: boolean }> {
    const cleared = await this.store.unmarkBad(component, version);
    this.log.info({ event: 'install.unmarked', component, version, cleared }, cleared ? 'the bad mark is cleared; trying this version again' : 'this version was not marked bad');
    if (cleared) {
      this.#skipSaid.delete(`${component}@${version}`);
      this.#emit({ type: 'bad', component, version, action: 'unmarked' });
      this.#reconcile();
    }
    return { cleared };
  }

  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.#events.on('event', listener);
    return () => this.#events.off('event', listener);
  }

  metricsText(): string {
    const beyond = (ns: number) => Math.max(0, ns / 1e6 - (eventLoopDelayIncludesInterval ? ELD_RESOLUTION_MS : 0));
    if (this.#eld.count > 0) this.metrics.eventLoopDelay({ p50: beyond(this.#eld.percentile(50)), p99: beyond(this.#eld.percentile(99)), max: beyond(this.#eld.max) });
    return this.metrics.render();
  }

  /** SIGHUP: re-read the config now. */
  async reload(): Promise<void> {
    await this.#watcher?.reload();
  }

  /** Stops watching, aborts installs (downloads stay resumable), stops the server, closes the API, releases the lock. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#eld.disable();
    await this.#notify.stopping();
    this.#poller?.stop();
    await this.#watcher?.close();
    await this.reconciler?.shutdown();
    await this.#reconciling.catch(() => undefined);
    await this.#api?.close();
    await this.store?.close();
    await this.#notify.close();
  }
}
