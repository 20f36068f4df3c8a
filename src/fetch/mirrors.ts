/**
 * Mirrors and retries for one resource: each URL in turn, each retried with
 * the one backoff (`base/backoff.ts`) while it fails without progress, and a
 * ledger of every URL, how it failed and how often, for the final error.
 * What an attempt does with the bytes is the caller's (`attempt`): this
 * module knows no archive.
 */
import { ArchiveError, DigestMismatchError, DownloadError, LanderError, hasCode } from '../base/errors.ts';
import { backoffDelay, sleep } from '../base/backoff.ts';

/** The outcome of one attempt at one URL. */
export type AttemptOutcome =
  | { kind: 'complete' }
  /** Worth another try at the same URL (a break, a 5xx, a 429); `retryAfter` from the server. */
  | { kind: 'retry'; error: Error; retryAfter?: string }
  /** Ask again at once, not a failure (e.g. to switch from one stream to segments). */
  | { kind: 'again'; reason: string }
  /** This URL will not serve it (404, bad redirect): on to the next. */
  | { kind: 'next-url'; error: Error }
  /** Stop everything (abort, disk full, size cap). */
  | { kind: 'fatal'; error: Error };

export interface RetrySettings {
  /** Attempts after the first that bring no byte, per URL. */
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
}

type Log = (level: 'info' | 'warn', event: string, fields: Record<string, unknown>, msg: string) => void;

/** A hard cap on attempts per URL even while each attempt makes progress (every loop has a cap). */
const PROGRESS_ATTEMPTS_FACTOR = 50;

interface Tried {
  url: string;
  attempts: number;
  reason: string;
  code: string;
}

/** Every URL tried for one resource, how it failed and after how many attempts. */
export class MirrorLedger {
  readonly tried: Tried[] = [];
  attempts = 0;

  record(url: string, attempts: number, error: Error): void {
    this.tried.push({ url, attempts, reason: reasonOf(error, url), code: (error as LanderError).code ?? 'ERR_DOWNLOAD_FAILED' });
  }

  /**
   * The error to throw once every URL failed: `last` itself when only one URL
   * was tried; otherwise one naming each URL, keeping `last`'s class and code.
   */
  finalError(subject: string, last: Error): Error {
    if (this.tried.length <= 1) return last;
    const each = this.tried.map((t) => `${t.url}: ${t.reason} (after ${t.attempts} ${t.attempts === 1 ? 'attempt' : 'attempts'})`).join('; ');
    const message = `Cannot download ${subject} from any of its ${this.tried.length} URLs: ${each}`;
    const lastUrl = this.tried[this.tried.length - 1]!.url;
    const opts = { cause: last, data: { ...((last as LanderError).data ?? {}), url: lastUrl, urls: this.tried.map((t) => t.url), tried: this.tried, attempts: this.attempts } };
    if (last instanceof DigestMismatchError) return new DigestMismatchError(message, opts);
    if (last instanceof ArchiveError) return new ArchiveError(last.code, message, opts);
    return new DownloadError(hasCode(last, 'ERR_HTTP_STATUS') ? 'ERR_HTTP_STATUS' : ((last as LanderError).code ?? 'ERR_DOWNLOAD_FAILED'), message, opts);
  }
}

export interface MirrorLoopOptions {
  /** What is downloaded, for the final error ("server 0.3.1"). */
  subject: string;
  urls: string[];
  /** Index of the first URL to try. */
  from: number;
  retry: RetrySettings;
  signal: AbortSignal;
  ledger: MirrorLedger;
  /** One attempt at `url` (resuming from whatever the caller already has). */
  attempt(url: string): Promise<AttemptOutcome>;
  /** Bytes the caller has so far: an attempt that adds some is progress, not a failure. */
  progress(): number;
  /** True when nothing is left to fetch (checked before each attempt). */
  isComplete(): boolean;
  log: Log;
}

/**
 * Tries each URL from `from` on until one completes the resource and
 * returns its index; throws a fatal outcome's error as it is, and otherwise,
 * once every URL gave up, the ledger's error naming all of them.
 */
export async function tryMirrors(o: MirrorLoopOptions): Promise<{ index: number; attempts: number }> {
  let last: Error | undefined;
  for (let i = o.from; i < o.urls.length; i++) {
    const url = o.urls[i]!;
    const r = await tryOneUrl(url, o);
    if (r.done) return { index: i, attempts: r.attempts };
    last = r.error;
    o.ledger.record(url, r.attempts, r.error);
    const next = o.urls[i + 1];
    if (next !== undefined) {
      o.log('warn', 'download.mirror-next', { url, next, reason: reasonOf(r.error, url), status: (r.error as LanderError).data?.status, attempts: r.attempts }, 'this URL failed; trying the next mirror');
    }
  }
  if (!last) throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${o.subject}: no URL to try`, { data: { urls: o.urls } });
  throw o.ledger.finalError(o.subject, last);
}

async function tryOneUrl(url: string, o: MirrorLoopOptions): Promise<{ done: true; attempts: number } | { done: false; error: Error; attempts: number }> {
  let failures = 0; // consecutive attempts that brought no byte
  let attempts = 0;
  let lastError: Error | undefined;
  let retryAfter: string | undefined;
  let again = false;
  while (attempts < (o.retry.retries + 1) * PROGRESS_ATTEMPTS_FACTOR) {
    if (o.isComplete()) return { done: true, attempts };
    if (attempts > 0 && !again) {
      const delayMs = backoffDelay({ attempt: Math.max(1, failures), initialMs: o.retry.backoffInitialMs, maxMs: o.retry.backoffMaxMs, retryAfter });
      o.log('warn', 'download.retry', { url, attempt: attempts + 1, delayMs, reason: lastError?.message, offset: o.progress() }, 'retrying the download');
      await sleep(delayMs, o.signal);
    }
    attempts++;
    o.ledger.attempts++;
    const before = o.progress();
    const r = await o.attempt(url);
    again = r.kind === 'again';
    if (r.kind === 'again') continue;
    if (r.kind === 'complete') return { done: true, attempts };
    if (r.kind === 'fatal') throw r.error;
    lastError = r.error;
    if (r.kind === 'next-url') return { done: false, error: giveUp(url, r.error, attempts, o.progress()), attempts };
    retryAfter = r.retryAfter;
    // A break after progress is not the server failing us; only attempts that bring nothing count.
    failures = o.progress() > before ? 0 : failures + 1;
    if (failures > o.retry.retries) return { done: false, error: giveUp(url, r.error, attempts, o.progress()), attempts };
  }
  return { done: false, error: giveUp(url, lastError ?? new Error('too many attempts'), attempts, o.progress()), attempts };
}

function giveUp(url: string, err: Error, attempts: number, offset: number): DownloadError {
  const code = hasCode(err, 'ERR_HTTP_STATUS') ? 'ERR_HTTP_STATUS' : ((err as DownloadError).code ?? 'ERR_DOWNLOAD_FAILED');
  return new DownloadError(code, `Cannot download ${url}: ${reasonOf(err, url)} (after ${attempts} ${attempts === 1 ? 'attempt' : 'attempts'})`, {
    cause: err, data: { ...((err as DownloadError).data ?? {}), url, attempts, offset },
  });
}

/** An attempt's failure without the `Cannot download <url>: ` and `(after N attempts)` its message may carry. */
export function reasonOf(err: Error, url: string): string {
  const prefix = `Cannot download ${url}: `;
  const m = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  return m.replace(/ \(after \d+ attempts?\)$/, '');
}
