/**
 * Runs the GPU server as a child process in a generation folder and keeps it
 * running: health on start, liveness while running, restarts with backoff,
 * crash-loop detection, and a stop that leaves no process of its group behind.
 *
 * States: stopped → starting → healthy ⇄ unhealthy; an unexpected exit goes
 * to backoff → starting (or failed on a crash loop); stop() goes through
 * stopping → stopped from anywhere. A start that never gets healthy ends in
 * failed. Every transition is logged as `server.state` and emitted as 'state'.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ServerConfig } from '../config/schema.ts';
import { AbortError, ServerError, serializeError } from '../base/errors.ts';
import { httpProbe, LogLineProbe, waitHealthy, type ProcessExit } from './probe.ts';
import { environmentFailure, refuseTakenPort } from './spawn-environment.ts';
import type { Logger } from '../report/log.ts';
import { OutputBudget, type OutputBudgetOptions } from './output-budget.ts';
import { decideRestart, emptyHistory, type RestartHistory } from './restart-policy.ts';
import { groupAlive, groupExists, signalGroup } from './process-group.ts';
import { pipeServerOutput, type ServerOutput } from './server-output.ts';
import { cleanSpawn } from '../base/runtime.ts';

export type { ExitInfo, GenerationId, ServerState, StateChange, SupervisorEvents, SupervisorInfo, SupervisorOptions } from './supervisor-model.ts';
import type { ExitInfo, GenerationId, ServerState, StateChange, SupervisorEvents, SupervisorInfo, SupervisorOptions } from './supervisor-model.ts';

interface Run {
  child: ChildProcess;
  pid: number;
  generation: GenerationId;
  spawnedAt: number;
  exited: Promise<ProcessExit>;
  exit?: ProcessExit;
  stopRequested: boolean;
  forced: boolean;
  logLine?: LogLineProbe;
  /** While starting: probe health now (set by waitHealthy). */
  probeNow?: () => void;
  output?: ServerOutput;
  /** Its process group is known gone: never signal that pgid again (the number may be reused). */
  reaped: boolean;
}

const RUNNING: ReadonlySet<ServerState> = new Set(['healthy', 'unhealthy']);

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #server: ServerConfig;
  readonly #log: Logger;
  readonly #opts: SupervisorOptions;
  readonly #budget: OutputBudget;
  #state: ServerState = 'stopped';
  #since = new Date();
  #dir?: string;
  #generation?: GenerationId;
  #run?: Run;
  /** Aborted by stop(): cancels a start in progress, a backoff, the liveness probes. */
  #session?: AbortController;
  /** The start or restart in progress (launch plus its clean-up), so stop() can wait for it. */
  #pending?: Promise<unknown>;
  #stopping?: Promise<void>;
  #history: RestartHistory = emptyHistory;
  #restarts = 0;
  #lastExit?: ExitInfo;
  #lastError?: string;
  #backoffTimer?: ReturnType<typeof setTimeout>;
  #monitorTimer?: ReturnType<typeof setTimeout>;

  constructor(opts: SupervisorOptions) {
    super();
    this.#server = opts.server;
    this.#log = opts.log;
    this.#opts = opts;
    this.#budget = new OutputBudget(opts.output, performance.now());
    // Fail on a bad regex now, not at the first start.
    if (opts.server.health?.logLine) new LogLineProbe(opts.server.health.logLine);
  }

  get state(): ServerState { return this.#state; }
  get pid(): number | undefined { return this.#run && !this.#run.exit ? this.#run.pid : undefined; }
  get generation(): GenerationId | undefined { return this.#generation; }

  info(): SupervisorInfo {
    const i: SupervisorInfo = { state: this.#state, since: this.#since.toISOString(), restarts: this.#restarts };
    if (this.pid !== undefined) i.pid = this.pid;
    if (this.#generation !== undefined) i.generation = this.#generation;
    if (this.#lastExit) i.lastExit = this.#lastExit;
    if (this.#lastError) i.lastError = this.#lastError;
    return i;
  }

  /**
   * Starts the server in `generationDir` (its real path is the working
   * directory). Resolves once healthy (or once spawned when no health check is
   * configured). Rejects with ServerError `ERR_SERVER_UNHEALTHY`,
   * `ERR_SERVER_EXITED`, `ERR_SERVER_SPAWN` or `ERR_SERVER_BUSY`, or with
   * AbortError when stop() interrupts it.
   */
  async start(generationDir: string, generationId: GenerationId): Promise<void> {
    if (this.#stopping) await this.#stopping;
    if (this.#state !== 'stopped' && this.#state !== 'failed') {
      throw new ServerError('ERR_SERVER_BUSY', `Cannot start the server: it is ${this.#state}; stop it first`, { data: { state: this.#state } });
    }
    this.#dir = generationDir;
    this.#generation = generationId;
    this.#history = emptyHistory;
    this.#restarts = 0;
    this.#lastError = undefined;
    const session = (this.#session = new AbortController());
    const attempt = this.#launch(session.signal).catch(async (raw: unknown) => {
      if (session.signal.aborted) throw raw; // stop() owns the state now
      // The machine's fault (a permission, a missing interpreter) is no verdict on the release.
      const err = environmentFailure(raw, { command: this.#server.command, insideRelease: !path.isAbsolute(this.#server.command) }) ?? raw;
      this.#lastError = (err as Error).message;
      await this.#terminateRun('stopping');
      this.#transition('failed', { err: serializeError(err) });
      throw err;
    });
    this.#pending = attempt.catch(() => {});
    await attempt;
  }

  /**
   * Stops the server: the stop signal to its process group, SIGKILL to the
   * group after `stop.timeout`, and SIGKILL to anything of the group that
   * outlived the leader. Concurrent calls share one stop.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#doStop().finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  /** Stops the server and starts it from another generation. */
  async restartOn(generationDir: string, generationId: GenerationId): Promise<void> {
    await this.stop();
    await this.start(generationDir, generationId);
  }

  async #doStop(): Promise<void> {
    this.#session?.abort(new AbortError('Cannot keep the server running: stop was requested'));
    this.#clearTimers();
    if (this.#state !== 'stopped') this.#transition('stopping');
    await this.#pending;
    this.#clearTimers();
    await this.#terminateRun();
    if (this.#state !== 'stopped') this.#transition('stopped');
  }

  /** One attempt: realpath, spawn, wait for health. Throws; never changes state once aborted. */
  async #launch(signal: AbortSignal): Promise<void> {
    const aborted = () => new AbortError('Cannot start the server: stop was requested', { cause: signal.reason });
    // Synchronously, before any await: a second start() must see that one is under way.
    this.#transition('starting');
    this.#run = undefined;
    let cwd: string;
    try {
      cwd = await fs.realpath(this.#dir!);
    } catch (cause) {
      throw new ServerError('ERR_SERVER_SPAWN', `Cannot start the server: the generation folder ${this.#dir} cannot be resolved`, { cause, data: { dir: this.#dir } });
    }
    if (signal.aborted) throw aborted();
    await refuseTakenPort(this.#server.health?.url);
    const run = await this.#spawn(cwd);
    if (signal.aborted) throw aborted();
    const h = this.#server.health;
    if (!h || (!h.url && !h.logLine)) {
      this.#transition('healthy');
      return;
    }
    const res = await waitHealthy({
      probe: h.url ? (s) => httpProbe({ url: h.url!, status: h.status, json: h.json, timeoutMs: h.probeTimeout, signal: s }) : undefined,
      logLine: run.logLine,
      exited: run.exited,
      signal,
      timeoutMs: h.timeout,
      intervalMs: h.interval,
      onProbeNow: (fn) => (run.probeNow = fn),
    }).finally(() => (run.probeNow = undefined));
    if (signal.aborted) throw aborted();
    this.#transition('healthy', { elapsedMs: Math.round(res.elapsedMs), spawnToHealthyMs: Math.round(performance.now() - run.spawnedAt), probes: res.probes, via: res.via });
    if (h.url) this.#monitor(run, signal);
  }

  async #spawn(cwd: string): Promise<Run> {
    const { command, args, env } = this.#server;
    const file = path.isAbsolute(command) ? command : path.resolve(cwd, command);
    // Checked here rather than left to spawn's ENOENT: under Deno a shell runs it (cleanSpawn) and would only exit 127.
    await fs.access(file, fsConstants.X_OK).catch((cause: NodeJS.ErrnoException) => {
      throw new ServerError('ERR_SERVER_SPAWN', `Cannot start the server: ${file} could not be run (${cause.code === 'ENOENT' ? 'no such file' : cause.message})`, { cause, data: { command: file, cwd } });
    });
    const clean = cleanSpawn(file, args);
    const child = spawn(clean.file, clean.args, {
      cwd,
      env: { ...process.env, ...env },
      // Its own process group, so stop() reaches the server's own children too.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (cause) {
      // The file exists (checked above): an ENOENT now is its #! interpreter that is missing.
      throw new ServerError('ERR_SERVER_SPAWN', `Cannot start the server: ${file} could not be run (${(cause as Error).message})`, { cause, data: { command: file, cwd, stage: 'spawn' } });
    }
    const run: Run = {
      child, pid: child.pid!, generation: this.#generation!, spawnedAt: performance.now(),
      exited: new Promise((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig }))),
      stopRequested: false, forced: false, reaped: false,
      logLine: this.#server.health?.logLine ? new LogLineProbe(this.#server.health.logLine) : undefined,
    };
    this.#run = run;
    // A later 'error' (e.g. a failed kill) must not go unhandled, nor unseen.
    child.on('error', (err) => this.#log.warn({ event: 'server.process-error', serverPid: run.pid, err }, 'server process error'));
    run.output = pipeServerOutput(child, {
      log: this.#log, serverPid: run.pid, budget: this.#budget, maxLineBytes: this.#opts.output?.maxLineBytes,
      onLine: (line) => {
        // Both streams: uvicorn, which voicebox uses, logs "Application startup complete" to stderr.
        run.logLine?.feed(line);
        run.probeNow?.();
      },
    });
    void run.exited.then((e) => this.#onExit(run, e));
    this.#log.info({ event: 'server.spawn', serverPid: run.pid, generation: run.generation, command: file, args, cwd }, 'server spawned');
    return run;
  }

  #onExit(run: Run, e: ProcessExit): void {
    run.exit = e;
    const info: ExitInfo = {
      pid: run.pid, generation: run.generation, code: e.code, signal: e.signal,
      uptimeMs: Math.round(performance.now() - run.spawnedAt), at: new Date().toISOString(),
      expected: run.stopRequested, forced: run.forced,
      clean: e.code === 0 || (run.stopRequested && !run.forced && e.signal === this.#server.stop.signal),
    };
    this.#lastExit = info;
    run.output?.reportDropped();
    const { pid, ...rest } = info;
    this.#log[info.expected && info.clean ? 'info' : 'warn']({ event: 'server.exit', serverPid: pid, ...rest }, 'server exited');
    this.emit('exit', info);
    // A start in progress sees the exit through waitHealthy; stop() through terminate.
    if (run !== this.#run || run.stopRequested || !RUNNING.has(this.#state)) return;
    this.#clearTimers();
    // Before any restart: a leftover worker could hold the port. Silent here; #terminateRun reports leftovers.
    if (groupExists(run.pid)) signalGroup(run.pid, 'SIGKILL', this.#log);
    this.#crashed(run);
  }

  /** After an unexpected end of a run: back off and relaunch, or give up on a crash loop. */
  #crashed(run: Run | undefined): void {
    const signal = this.#session!.signal;
    if (signal.aborted) return;
    const uptimeMs = run ? performance.now() - run.spawnedAt : 0;
    const d = decideRestart(this.#server.restart, this.#history, { at: performance.now(), uptimeMs });
    this.#history = d.history;
    if (d.action === 'fail') {
      this.#transition('failed', { exitsInWindow: d.exitsInWindow });
      this.#log.error({ event: 'server.crash-loop', generation: this.#generation, exitsInWindow: d.exitsInWindow, windowMs: this.#server.restart.window }, 'server crash loop');
      this.emit('crash-loop', { generation: this.#generation!, exitsInWindow: d.exitsInWindow, lastExit: this.#lastExit });
      return;
    }
    this.#transition('backoff', { delayMs: d.delayMs, attempt: d.attempt });
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#pending = this.#relaunch(signal);
    }, d.delayMs);
  }

  async #relaunch(signal: AbortSignal): Promise<void> {
    this.#restarts++;
    try {
      await this.#launch(signal);
    } catch (err) {
      if (signal.aborted) return;
      this.#lastError = (err as Error).message;
      this.#log.warn({ event: 'server.restart-failed', generation: this.#generation, err }, 'server restart failed');
      const run = this.#run;
      await this.#terminateRun();
      this.#crashed(run);
    }
  }

  /** Liveness: probes at `health.livenessInterval` (calmer than the readiness polling at start) while running; `unhealthyAfter` failures in a row → unhealthy. */
  #monitor(run: Run, signal: AbortSignal): void {
    const h = this.#server.health!;
    const limit = this.#opts.unhealthyAfter ?? 3;
    let failures = 0;
    const tick = async () => {
      this.#monitorTimer = undefined;
      const r = await httpProbe({ url: h.url!, status: h.status, json: h.json, timeoutMs: h.probeTimeout, signal });
      if (signal.aborted || run !== this.#run || run.exit || !RUNNING.has(this.#state)) return;
      if (r.ok) {
        failures = 0;
        if (this.#state === 'unhealthy') this.#transition('healthy');
      } else if (++failures >= limit && this.#state === 'healthy') {
        this.#transition('unhealthy', { reason: r.reason, failures });
      }
      this.#monitorTimer = setTimeout(tick, every);
    };
    const every = h.livenessInterval ?? 5_000;
    this.#monitorTimer = setTimeout(tick, every);
  }

  /** Ends the current run if it is alive; `via` is the state to show meanwhile. */
  async #terminateRun(via?: ServerState): Promise<void> {
    const run = this.#run;
    if (!run || run.reaped) return;
    run.stopRequested = true;
    if (!run.exit) {
      if (via && this.#state !== via) this.#transition(via);
      const { signal: stopSignal, timeout } = this.#server.stop;
      signalGroup(run.pid, stopSignal, this.#log);
      if (!(await within(run.exited, timeout))) {
        run.forced = true;
        this.#log.warn({ event: 'server.kill', serverPid: run.pid, timeoutMs: timeout }, 'server did not stop in time, sending SIGKILL');
        signalGroup(run.pid, 'SIGKILL', this.#log);
        const killWait = this.#opts.killTimeoutMs ?? 5000;
        if (!(await within(run.exited, killWait))) {
          throw new ServerError('ERR_SERVER_STOP', `Cannot stop the server: pid ${run.pid} is still there ${killWait} ms after SIGKILL`, { data: { serverPid: run.pid } });
        }
      }
    }
    // SIGKILL to whatever of the group outlived its leader (e.g. a worker that ignored SIGTERM).
    if (await groupAlive(run.pid)) {
      this.#log.warn({ event: 'server.leftovers', serverPid: run.pid }, 'killing processes left in the server process group');
      signalGroup(run.pid, 'SIGKILL', this.#log);
      // Bounded: SIGKILL is near-instant, but wait so a restart finds their ports free.
      for (let i = 0; i < 50 && (await groupAlive(run.pid)); i++) await new Promise((r) => setTimeout(r, 20));
    }
    run.reaped = true;
  }

  #clearTimers(): void {
    clearTimeout(this.#backoffTimer);
    clearTimeout(this.#monitorTimer);
    this.#backoffTimer = this.#monitorTimer = undefined;
  }

  #transition(to: ServerState, extra: Record<string, unknown> = {}): void {
    const from = this.#state;
    this.#state = to;
    this.#since = new Date();
    const change: StateChange = { from, to, generation: this.#generation };
    if (this.pid !== undefined) change.pid = this.pid;
    this.#log.info({ event: 'server.state', from, to, serverPid: change.pid, generation: change.generation, ...extra }, 'server state');
    if (from !== to) this.emit('state', change);
  }
}

/** True when `p` settles within `ms`; the timer is always cleared. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((r) => (t = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(t);
  }
}
