/**
 * The restart schedule of a supervised server, as pure data in and out:
 * exponential backoff for consecutive crashes, a reset after a stable run,
 * and crash-loop detection (too many exits within a sliding window).
 * No timers and no clock here: the caller passes the time of each exit.
 */
import { exponentialDelay } from '../base/backoff.ts';

/** The knobs, shaped like `ServerConfig['restart']` so it can be passed straight in. */
export interface RestartPolicy {
  /** Delay before the first restart after a crash, in ms. */
  initialDelay: number;
  /** Each further consecutive crash multiplies the delay by this (>= 1). */
  factor: number;
  /** Upper bound of the delay, in ms. */
  maxDelay: number;
  /** A run at least this long (ms) counts as stable: the next crash starts again at `initialDelay`. */
  resetAfter: number;
  /** This many exits within `window` is a crash loop: stop restarting. */
  crashLoopExits: number;
  /** Length of the crash-loop window, in ms. */
  window: number;
}

/** What the policy remembers between exits. Treat as opaque and immutable. */
export interface RestartHistory {
  /** Crashes since the last stable run; the exponent of the next delay. */
  readonly consecutive: number;
  /** Times (caller's clock, ms) of the exits still inside the window, oldest first. */
  readonly exits: readonly number[];
}

/** One exit of the server, as the caller observed it. */
export interface ExitFact {
  /** When it exited, on a monotonic clock in ms (e.g. `performance.now()`). */
  at: number;
  /** How long that run lasted, in ms. */
  uptimeMs: number;
}

export type RestartDecision =
  | { action: 'restart'; delayMs: number; attempt: number; history: RestartHistory }
  | { action: 'fail'; exitsInWindow: number; history: RestartHistory };

export const emptyHistory: RestartHistory = Object.freeze({ consecutive: 0, exits: Object.freeze([]) as readonly number[] });

/**
 * Delay before restart number `n` (0-based) of a run of consecutive crashes:
 * `initialDelay * factor^n`, capped at `maxDelay`.
 *
 * @example restartDelay({ initialDelay: 1000, factor: 2, maxDelay: 5000 }, 3) // 5000 (8000 capped)
 */
export function restartDelay(p: Pick<RestartPolicy, 'initialDelay' | 'factor' | 'maxDelay'>, n: number): number {
  return exponentialDelay({ n, initialMs: p.initialDelay, factor: p.factor, maxMs: p.maxDelay });
}

/**
 * Decides what to do after an unexpected exit and returns the new history.
 * A crash loop wins over the backoff: once `crashLoopExits` exits fall
 * inside `window`, the answer is `fail` whatever the uptime of the last run.
 */
export function decideRestart(p: RestartPolicy, history: RestartHistory, exit: ExitFact): RestartDecision {
  const since = exit.at - p.window;
  // Keep at most crashLoopExits stamps: the window check needs no more, so the history stays bounded.
  const exits = [...history.exits.filter((t) => t > since), exit.at].slice(-p.crashLoopExits);
  const consecutive = exit.uptimeMs >= p.resetAfter ? 0 : history.consecutive;
  if (exits.length >= p.crashLoopExits) {
    return { action: 'fail', exitsInWindow: exits.length, history: { consecutive: consecutive + 1, exits } };
  }
  return {
    action: 'restart',
    delayMs: restartDelay(p, consecutive),
    attempt: consecutive + 1,
    history: { consecutive: consecutive + 1, exits },
  };
}
