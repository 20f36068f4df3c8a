/**
 * Pure retry schedule: exponential backoff with full jitter (AWS
 * architecture blog's "full jitter": a uniform pick in [0, cap]), honouring a
 * server's Retry-After.
 */

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
  // 2 ** attempt overflows to Infinity for large attempts; Math.min keeps it at the cap.
  const cap = Math.min(max, initial * 2 ** (attempt - 1));
  const jittered = Math.floor(random() * cap);
  const after = parseRetryAfter(opts.retryAfter, opts.now ?? Date.now());
  if (after === undefined) return jittered;
  return Math.max(jittered, Math.min(after, opts.maxRetryAfterMs ?? 300_000));
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
