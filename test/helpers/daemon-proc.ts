/**
 * `lander run` as a real child process, with its JSON log lines parsed as
 * they arrive and a way to wait for one.
 */
import { startLander, parseLogs, type LogRecord } from './lander-cli.ts';
import type { ChildProcess } from 'node:child_process';
import { signalChild } from '../../src/base/runtime.ts';

export interface DaemonProc {
  child: ChildProcess;
  logs(): LogRecord[];
  /** Resolves with the first record (from `since` on) that matches; rejects after `timeoutMs` with the log tail. */
  waitFor(match: (r: LogRecord) => boolean, opts?: { timeoutMs?: number; since?: number }): Promise<LogRecord>;
  /**
   * Sends a signal (e.g. SIGHUP) without waiting. Never `child.kill()`: under
   * Deno a first kill() makes every later one a no-op (see signalChild).
   */
  signal(signal: NodeJS.Signals): boolean;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

export function startDaemon(configPath: string, env: Record<string, string> = {}): DaemonProc {
  const p = startLander(['run', '--config', configPath], env);
  const exited = p.finished().then((r) => ({ code: r.code, signal: r.signal, stderr: r.stderr }));
  const logs = () => parseLogs(p.output());
  return {
    child: p.child,
    logs,
    exited,
    async waitFor(match, opts = {}) {
      const deadline = performance.now() + (opts.timeoutMs ?? 20_000);
      let done = false;
      void exited.then(() => (done = true));
      for (;;) {
        const hit = logs().slice(opts.since ?? 0).find(match);
        if (hit) return hit;
        if (done || performance.now() > deadline) {
          const tail = logs().slice(-40).map((r) => JSON.stringify(r)).join('\n');
          throw new Error(`${done ? 'lander exited' : 'timed out'} before the awaited log line; last lines:\n${tail}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    signal: (signal) => signalChild(p.child, signal),
    async stop(signal = 'SIGTERM') {
      signalChild(p.child, signal);
      const r = await exited;
      return { code: r.code, signal: r.signal };
    },
  };
}
