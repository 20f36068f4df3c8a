/**
 * Small text downloads (`.sha256` sidecars, `cuda-libs.json`) on the main
 * thread, with the same timeouts and retries as archive downloads and a hard
 * cap on the body size.
 */
import { DownloadError, AbortError } from '../base/errors.ts';
import { backoffDelay, sleep } from '../base/backoff.ts';
import { httpGet, isRetryableStatus } from './http-get.ts';
import { readBounded } from './read-bounded.ts';

export interface FetchTextOptions {
  /** @default 15000 */
  connectTimeoutMs?: number;
  /** @default 30000 */
  idleTimeoutMs?: number;
  /** Attempts after the first. @default 5 */
  retries?: number;
  /** @default 1000 */
  backoffInitialMs?: number;
  /** @default 30000 */
  backoffMaxMs?: number;
  /** Largest body accepted; a sidecar is a line, a manifest a few hundred bytes. @default 65536 */
  maxBytes?: number;
  signal?: AbortSignal;
  /** Called before each retry, for logging. */
  onRetry?(info: { url: string; attempt: number; delayMs: number; reason: string }): void;
}

/** Failure of one attempt; `retryable` says whether another is worth it. */
interface AttemptFailure { retryable: boolean; error: Error; retryAfter?: string }

/**
 * GETs a small text body (http, https or file), following redirects and
 * retrying transient failures (network errors, 408/429/5xx) with backoff.
 *
 * @throws DownloadError `ERR_HTTP_STATUS` (e.g. 404), `ERR_SIZE_LIMIT`, or `ERR_DOWNLOAD_FAILED` after the last attempt.
 */
export async function fetchText(url: string, opts: FetchTextOptions = {}): Promise<string> {
  const retries = opts.retries ?? 5;
  const maxBytes = opts.maxBytes ?? 64 * 1024;
  let last: AttemptFailure | undefined;
  for (let attempt = 1; attempt <= retries + 1; attempt++) {
    if (attempt > 1) {
      const delayMs = backoffDelay({ attempt: attempt - 1, initialMs: opts.backoffInitialMs, maxMs: opts.backoffMaxMs, retryAfter: last?.retryAfter });
      opts.onRetry?.({ url, attempt, delayMs, reason: last!.error.message });
      await sleep(delayMs, opts.signal).catch((reason) => { throw new AbortError(`Cannot download ${url}: aborted`, { cause: reason }); });
    }
    const outcome = await attemptOnce(url, maxBytes, opts).catch((error: Error): AttemptFailure => {
      if (opts.signal?.aborted) throw new AbortError(`Cannot download ${url}: aborted`, { cause: error });
      return { retryable: true, error };
    });
    if (typeof outcome === 'string') return outcome;
    if (!outcome.retryable) {
      throw outcome.error instanceof DownloadError ? outcome.error
        : new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${url}: ${outcome.error.message}`, { cause: outcome.error, data: { url, attempts: attempt } });
    }
    last = outcome;
  }
  throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${url}: ${last!.error.message} (after ${retries + 1} attempts)`, {
    cause: last!.error,
    data: { url, attempts: retries + 1 },
  });
}

async function attemptOnce(url: string, maxBytes: number, opts: FetchTextOptions): Promise<string | AttemptFailure> {
  const res = await httpGet(url, { connectTimeoutMs: opts.connectTimeoutMs, idleTimeoutMs: opts.idleTimeoutMs, signal: opts.signal });
  if (res.status !== 200) {
    res.body.destroy();
    const error = new DownloadError('ERR_HTTP_STATUS', `Cannot download ${url}: the server answered HTTP ${res.status}`, { data: { url, status: res.status } });
    return { retryable: isRetryableStatus(res.status), error, retryAfter: res.headers['retry-after'] };
  }
  const { body, declared } = await readBounded(res, maxBytes, url);
  if (declared !== undefined && body.length !== declared) {
    return { retryable: true, error: new Error(`short body: ${body.length} of ${declared} bytes`) };
  }
  return body.toString('utf8');
}
