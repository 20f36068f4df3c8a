/**
 * The only place where Node.js and Deno differ for lander.
 */

import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export const isDeno = 'Deno' in globalThis;

/** True when this runtime executes `.ts` files directly (Deno, Node >= 22.18). */
export function canRunTypeScript(): boolean {
  return isDeno || !!(process as unknown as { features?: { typescript?: unknown } }).features?.typescript;
}

/**
 * URL of a module that sits at `relPath` from the module at `base`
 * (an `import.meta.url`), in the form this runtime can load in a worker:
 * the `.ts` source under Deno and new Node; the compiled `dist/**.js` when
 * running from sources on Node 20 (vitest), so `npm run build` must come first.
 *
 * @example workerUrl(import.meta.url, '../../workers/install.worker.ts')
 */
export function moduleUrl(base: string, relPath: string): URL {
  if (!base.endsWith('.ts')) return new URL(relPath.replace(/\.ts$/, '.js'), base);
  if (canRunTypeScript()) return new URL(relPath, base);
  const compiledBase = base.replace(/\/(src|workers|bench|test)\/(?!.*\/(src|workers|bench|test)\/)/, '/dist/$1/');
  return new URL(relPath.replace(/\.ts$/, '.js'), compiledBase);
}

export const runtimeName = isDeno ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`;

/**
 * The command line that runs a plain JavaScript file with this same runtime:
 * `node FILE` or `deno run -A FILE`. Tests use it to start stand-in servers.
 */
export function scriptCommand(file: string, args: string[] = []): { command: string; args: string[] } {
  return { command: process.execPath, args: isDeno ? ['run', '-A', file, ...args] : [file, ...args] };
}

/**
 * How to spawn `file args` so the child inherits no descriptor but stdio.
 * Node marks every descriptor close-on-exec; Deno 2 does not, so a child
 * would inherit lander's listening API socket (and keep answering on it
 * after lander dies), its pipes and its epoll descriptors. Under Deno on
 * Linux the child is started through bash (dash cannot name descriptors
 * above 9), which closes descriptors 3 and up and then execs the command:
 * same pid, same process group.
 */
export function cleanSpawn(file: string, args: string[]): { file: string; args: string[] } {
  if (!isDeno || process.platform !== 'linux' || !existsSync('/bin/bash')) return { file, args };
  const script = 'for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; exec "$@"';
  return { file: '/bin/bash', args: ['-c', script, 'lander-server', file, ...args] };
}

/**
 * Sends `signal` to a child process: `child.kill(signal)` where that works.
 *
 * Deno's `node:child_process` (seen in 2.9.6) gets `ChildProcess.kill` wrong
 * for any signal but the last one a child gets: the first successful kill()
 * sets `killed = true` and `signalCode = <that signal>` while the child still
 * runs, and every later kill() returns false without sending anything. So
 * after `kill('SIGHUP')` a `kill('SIGTERM')` or even `kill('SIGKILL')` never
 * reaches the child, and code that waits for `signalCode === null` believes
 * it already dead. The exit is then also reported with that first signal
 * (`code null, signal 'SIGHUP'` for a child that exited 0 on SIGTERM).
 * Under Deno the signal goes through `process.kill(pid)` instead, which
 * leaves the ChildProcess's bookkeeping alone, so its exit reports the truth.
 *
 * Returns false when the child has already exited (nothing is sent: its pid
 * may belong to another process by now) or is gone.
 */
export function signalChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): boolean {
  if (!isDeno) return child.kill(signal);
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  try {
    process.kill(child.pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/**
 * Node's monitorEventLoopDelay records the whole timer interval (a 10 ms
 * resolution reads as 10 ms on an idle loop); Deno's records only the delay
 * beyond it. Callers subtract the resolution only where it is included.
 */
export const eventLoopDelayIncludesInterval = !isDeno;
