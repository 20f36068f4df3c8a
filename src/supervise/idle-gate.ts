/**
 * For `restart.when: "idle"`: before restarting the server onto a new
 * generation, ask it whether it is idle (no generation in progress) and wait
 * until it says so, but never longer than `maxDeferral`: an update must land
 * eventually even on a server that is always busy.
 */
import type { ServerConfig } from '../config/schema.ts';
import { AbortError } from '../base/errors.ts';
import { sleep } from '../base/backoff.ts';
import { httpProbe, type ProbeResult } from './probe.ts';

/** The `restart.idle` settings; durations in ms. */
export interface IdleGateConfig {
  url: string;
  /** @default 200 */
  status: number;
  /** Subset the JSON body must contain when idle, e.g. {"idle": true}. */
  json?: Record<string, unknown>;
  /** Pause between probes. */
  interval: number;
  /** Longest wait before giving up and restarting anyway. */
  maxDeferral: number;
}

// Compile-time guard: the config's `restart.idle` must be passable to waitForIdle as is.
type Assert<T extends true> = T;
type _ConfigFits = Assert<NonNullable<ServerConfig['restart']['idle']> extends IdleGateConfig ? true : false>;

/** A restart waiting for the idle gate, as /status shows it. */
export interface IdleWait {
  generation: number;
  /** When the wait began (ISO). */
  since: string;
  /** The bound: the restart happens by then, idle or not. */
  maxDeferralMs: number;
}

export interface IdleResult {
  /** True when the server said idle; false when `maxDeferral` passed first. */
  idle: boolean;
  waitedMs: number;
  probes: number;
  last?: ProbeResult;
}

export interface WaitForIdleOptions {
  signal?: AbortSignal;
  /** Time one probe may take. @default 5000 */
  probeTimeoutMs?: number;
}

/**
 * Polls the idle URL until it answers as configured or `maxDeferral` passes.
 * An unreachable server counts as "not idle" (the caller knows whether it runs).
 * Rejects only with AbortError.
 */
export async function waitForIdle(cfg: IdleGateConfig, opts: WaitForIdleOptions = {}): Promise<IdleResult> {
  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  let probes = 0;
  let last: ProbeResult | undefined;
  for (;;) {
    if (opts.signal?.aborted) throw new AbortError('Cannot wait for the server to be idle: aborted', { cause: opts.signal.reason });
    const left = cfg.maxDeferral - elapsed();
    probes++;
    last = await httpProbe({
      url: cfg.url, status: cfg.status, json: cfg.json, signal: opts.signal,
      // A slow probe must not stretch the deferral past its bound.
      timeoutMs: Math.max(1, Math.min(opts.probeTimeoutMs ?? 5000, left)),
    });
    if (opts.signal?.aborted) throw new AbortError('Cannot wait for the server to be idle: aborted', { cause: opts.signal.reason });
    if (last.ok) return { idle: true, waitedMs: elapsed(), probes, last };
    const remaining = cfg.maxDeferral - elapsed();
    if (remaining <= 0) return { idle: false, waitedMs: elapsed(), probes, last };
    await sleep(Math.min(cfg.interval, remaining), opts.signal);
  }
}
