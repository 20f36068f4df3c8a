/**
 * Tells systemd about lander (`Type=notify`): READY=1, STATUS=…, STOPPING=1,
 * and WATCHDOG=1 pings every WATCHDOG_USEC/2 while lander is healthy.
 *
 * Why the `systemd-notify` command: the protocol is a datagram on the unix
 * socket named by NOTIFY_SOCKET, and neither Node nor Deno (without unstable
 * flags) can send a unix datagram. `systemd-notify` ships with systemd itself,
 * so it is there whenever NOTIFY_SOCKET is, and it waits until systemd has
 * processed the message (a barrier, since systemd 246), so a message is not
 * lost when the short-lived sender is gone before systemd looks at it.
 * Because the sender is a child process, not lander's main pid, the unit
 * needs `NotifyAccess=all` (contrib/lander.service has it); READY=1 carries
 * MAINPID=<lander's pid> so the main pid stays right even when lander was
 * started through a wrapper.
 *
 * NOTIFY_SOCKET and WATCHDOG_* are removed from lander's environment at
 * start, as sd_notify's `unset_environment` does: the GPU server (also in the
 * unit's cgroup, so allowed to notify under NotifyAccess=all) must not
 * inherit them and speak for lander. Without NOTIFY_SOCKET, all of this is a
 * silent no-op.
 */
import { spawn } from 'node:child_process';
import type { Logger } from './log.ts';
import { signalChild } from '../base/runtime.ts';

export interface NotifyOptions {
  log: Logger;
  /** Default process.env; NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read and deleted from it. */
  env?: Record<string, string | undefined>;
  /** The command that sends one message. @default 'systemd-notify' */
  command?: string;
  /** Longest wait for one send (systemd-notify's barrier included). @default 5000 */
  sendTimeoutMs?: number;
  pid?: number;
}

export interface WatchdogHealth {
  /** Undefined when lander is fine; otherwise why the ping is withheld, and details to log. */
  (): { reason: string; [k: string]: unknown } | undefined;
}

export class SystemdNotifier {
  readonly socket: string | undefined;
  /** Ping period, half of WATCHDOG_USEC; undefined without a watchdog for this process. */
  readonly watchdogMs: number | undefined;
  readonly #log: Logger;
  readonly #command: string;
  readonly #timeoutMs: number;
  readonly #pid: number;
  #queue: Promise<unknown> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;
  #warned = false;

  constructor(opts: NotifyOptions) {
    const env = opts.env ?? process.env;
    this.#log = opts.log;
    this.#command = opts.command ?? 'systemd-notify';
    this.#timeoutMs = opts.sendTimeoutMs ?? 5000;
    this.#pid = opts.pid ?? process.pid;
    this.socket = env.NOTIFY_SOCKET || undefined;
    const usec = Number(env.WATCHDOG_USEC);
    const forPid = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === this.#pid;
    this.watchdogMs = this.socket && forPid && Number.isFinite(usec) && usec > 0 ? Math.max(1, Math.floor(usec / 2000)) : undefined;
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
  }

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  ready(status?: string): Promise<void> {
    return this.send([`MAINPID=${this.#pid}`, 'READY=1', ...(status ? [`STATUS=${status}`] : [])]);
  }

  status(text: string): Promise<void> {
    return this.send([`STATUS=${text}`]);
  }

  stopping(): Promise<void> {
    this.stopWatchdog();
    return this.send(['STOPPING=1', 'STATUS=stopping']);
  }

  /**
   * Pings every `watchdogMs` while `health()` says lander is fine. A tick that
   * comes much later than due means the event loop was blocked: that ping is
   * withheld too, so a lander that keeps stalling gets restarted.
   */
  startWatchdog(health: WatchdogHealth): void {
    const every = this.watchdogMs;
    if (every === undefined || this.#timer) return;
    let due = performance.now() + every;
    const tick = () => {
      const now = performance.now();
      const lagMs = Math.round(now - due);
      due = now + every;
      const problem = lagMs > every / 2 ? { reason: 'event loop blocked', lagMs } : health();
      if (problem) {
        this.#log.warn({ event: 'systemd.watchdog-skipped', ...problem }, 'watchdog ping withheld');
        return;
      }
      void this.send(['WATCHDOG=1']);
    };
    this.#timer = setInterval(tick, every);
    this.#timer.unref?.();
    // The first ping now: WatchdogSec counts from READY, and the first tick is half a period away.
    void this.send(['WATCHDOG=1']);
  }

  stopWatchdog(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Sends one message; in order with earlier ones; never rejects (a failure is logged once). */
  send(lines: string[]): Promise<void> {
    if (!this.socket) return Promise.resolve();
    const state = lines.join(' ');
    const run = this.#queue.then(() => this.#spawn(lines)).then(
      () => this.#log.debug({ event: 'systemd.notify', state }, 'told systemd'),
      (err: unknown) => {
        // Once: a missing systemd-notify would otherwise warn on every watchdog ping.
        if (this.#warned) return;
        this.#warned = true;
        this.#log.warn({ event: 'systemd.notify-failed', state, err }, 'cannot notify systemd; readiness and watchdog pings do not reach it');
      },
    );
    this.#queue = run;
    return run;
  }

  #spawn(lines: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.#command, lines, { env: { ...process.env, NOTIFY_SOCKET: this.socket }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-500)));
      const timer = setTimeout(() => signalChild(child, 'SIGKILL'), this.#timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`${this.#command} ${lines.join(' ')} failed (${signal ?? `exit ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`));
      });
    });
  }

  /** Stops the watchdog and waits for messages in flight. */
  async close(): Promise<void> {
    this.stopWatchdog();
    await this.#queue;
  }
}
