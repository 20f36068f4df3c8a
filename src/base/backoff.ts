/**
 * The one backoff schedule (pure) and the one abortable sleep. Downloads and
 * manifest polls use exponential backoff with full jitter (AWS architecture
 * blog's "full jitter": a uniform pick in [0, cap]), honouring a server's
 * Retry-After; server restarts use the same exponential curve without jitter.
 */
import { AbortError, LanderError } from './errors.ts';

export interface ExponentialOptions {
  /** 0 for the first delay. */
  n: number;
  initialMs: number;
  /** Growth per step (>= 1). @default 2 */
  factor?: number;
  maxMs: number;
}

/**
 * `initialMs * factor^n`, capped at `maxMs`.
 *
 * @example exponentialDelay({ n: 3, initialMs: 1000, factor: 2, maxMs: 5000 }) // 5000 (8000 capped)
 */
export function exponentialDelay(o: ExponentialOptions): number {
  // The power overflows to Infinity for huge n; the cap still holds.
  const raw = o.initialMs * Math.pow(Math.max(1, o.factor ?? 2), Math.max(0, Math.floor(o.n)));
  return Math.min(o.maxMs, Number.isFinite(raw) ? raw : o.maxMs);
}

export interface BackoffOptions {
  /** 1 for the first retry. */
  attempt: number;
  /** Base delay of the first retry. @default 1000 */
  initialMs?: number;
  /** Cap on the exponential part. @default 30000 */
  maxMs?: number;
  /** A Retry-After header value: seconds or an HTTP date. */
  retryAfter?: string | null;
  /** Longest Retry-After obeyed; a server asking for hours is not waited on. @default 300000 */
  maxRetryAfterMs?: number;
  /** Current time in ms, for HTTP-date Retry-After. @default Date.now() */
  now?: number;
  /** A number in [0, 1). @default Math.random */
  random?: () => number;
}

/** Milliseconds to wait for a Retry-After value, or undefined when unparsable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP date always has a day or month name; this keeps `-1` (which Date.parse reads as a year) out.
  if (!/[A-Za-z]{3}/.test(v)) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/**
 * Delay before retry number `attempt`.
 *
 * @example backoffDelay({ attempt: 3, initialMs: 1000, maxMs: 30000 }) // in [0, 4000]
 * @example backoffDelay({ attempt: 1, retryAfter: '10' }) // >= 10000
 */
export function backoffDelay(opts: BackoffOptions): number {
  const initial = opts.initialMs ?? 1000;
  const max = opts.maxMs ?? 30_000;
  const random = opts.random ?? Math.random;
  const attempt = Math.max(1, Math.floor(opts.attempt));
  const cap = exponentialDelay({ n: attempt - 1, initialMs: initial, maxMs: max });
  const jittered = Math.floor(random() * cap);
  const after = parseRetryAfter(opts.retryAfter, opts.now ?? Date.now());
  if (after === undefined) return jittered;
  return Math.max(jittered, Math.min(after, opts.maxRetryAfterMs ?? 300_000));
}

/** The error an aborted wait rejects with: the signal's reason when it is lander's own, else an AbortError caused by it. */
function abortReason(signal: AbortSignal): Error {
  const r = signal.reason as unknown;
  return r instanceof LanderError ? r : new AbortError('Aborted', { cause: r });
}

/** Waits `ms`, or rejects (AbortError, or the signal's own LanderError reason) when the signal aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => { clearTimeout(t); reject(abortReason(signal!)); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
