/**
 * Fetches byte ranges of one URL into a file at their offsets, over up to N
 * keep-alive connections: the segmented download. Each request carries
 * `Range: bytes=S-E` and `If-Range: <validator>`; a 206 whose Content-Range
 * starts elsewhere or whose ETag differs, or a 200 (the server ignored the
 * range, or the resource changed), stops everything with
 * `ERR_RANGE_UNSUPPORTED` so the caller can fall back to one stream: no byte
 * of another version is ever written. A break retries that range from the
 * bytes it already wrote; 429/503 lowers the connection count and waits the
 * Retry-After. Segments go to the file, not to RAM: memory is about one
 * write batch per connection.
 *
 * Knows no archive and no layout: the install pipeline and chunked installs
 * both call it.
 *
 * @example
 * await fetchRanges({ url, fh, ranges: [{ start: 0, end: 1 << 20 }], validator: etag, connections: 8,
 *   signal, onWritten: (from, to) => coverage.push({ start: from, end: to }) });
 */
import http from 'node:http';
import https from 'node:https';
import type { FileHandle } from 'node:fs/promises';
import { DownloadError, type ErrorCode } from '../base/errors.ts';
import { backoffDelay, sleep } from '../base/backoff.ts';
import { httpGet, isRetryableStatus, parseContentRange, type HttpResponse } from './http-get.ts';
import type { ByteRange } from './byte-ranges.ts';
import { writeAllAt } from './write-all.ts';

export interface RangedFetchOptions {
  url: string;
  /** Opened for positional writes; bytes land at their offset in the resource. */
  fh: FileHandle;
  /** Ranges to fetch, in the order they are wanted (the earliest first when consumed in order). */
  ranges: ByteRange[];
  /** ETag (preferred) or Last-Modified, sent as If-Range; the resource must still have it. */
  validator: string;
  /** Extra request headers for every segment (e.g. a registry's Authorization). */
  headers?: Record<string, string>;
  /** Connections at most. */
  connections: number;
  signal?: AbortSignal;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Attempts of one range that bring no byte before the whole fetch fails. @default 5 */
  retries?: number;
  /** @default 1000 */
  backoffInitialMs?: number;
  /** @default 30000 */
  backoffMaxMs?: number;
  /** An open response whose body starts at `ranges[0].start` (a probe already made); its body is used for that range. */
  first?: HttpResponse;
  /** Bytes `[from, to)` are written to the file. */
  onWritten?(from: number, to: number): void;
  /** A whole range is written. */
  onRangeDone?(range: ByteRange): void;
  /** Connections open right now changed. */
  onConnections?(n: number): void;
  /** A range is retried after `delayMs`; for the log. */
  onRetry?(info: { range: ByteRange; offset: number; delayMs: number; reason: string; connections: number }): void;
}

/** Write batch per connection: fewer positional writes, little memory (8 connections hold ~2 MiB). */
const BATCH = 256 * 1024;

interface Slot {
  range: ByteRange;
  /** Next byte to fetch. */
  next: number;
  /** Consecutive attempts that wrote nothing. */
  failures: number;
}

class RetryableError extends Error {
  readonly retryAfter: string | undefined;
  readonly throttled: boolean;
  constructor(message: string, o: { cause?: unknown; retryAfter?: string; throttled?: boolean } = {}) {
    super(message, { cause: o.cause });
    this.retryAfter = o.retryAfter;
    this.throttled = o.throttled ?? false;
  }
}

/** Runs the fetch; resolves when every range is on disk, rejects on the first failure that is not retried. */
export async function fetchRanges(o: RangedFetchOptions): Promise<{ downloadedBytes: number }> {
  return new RangedFetch(o).run();
}

/** True for an ETag (`"…"` or `W/"…"`), as opposed to a Last-Modified date. */
function isEtag(v: string): boolean {
  return v.startsWith('"') || v.startsWith('W/');
}

class RangedFetch {
  private readonly o: RangedFetchOptions;
  private readonly queue: Slot[];
  private readonly ac = new AbortController();
  private readonly signal: AbortSignal;
  private readonly agent: http.Agent;
  private limit: number;
  private open = 0;
  private failure: Error | undefined;
  private downloaded = 0;
  private first: HttpResponse | undefined;

  constructor(o: RangedFetchOptions) {
    this.o = o;
    this.queue = o.ranges.filter((r) => r.end > r.start).map((range) => ({ range, next: range.start, failures: 0 }));
    this.limit = Math.max(1, Math.min(o.connections, this.queue.length));
    this.signal = o.signal ? AbortSignal.any([o.signal, this.ac.signal]) : this.ac.signal;
    const Agent = new URL(o.url).protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.limit });
    this.first = o.first;
  }

  async run(): Promise<{ downloadedBytes: number }> {
    try {
      await Promise.all(Array.from({ length: this.limit }, () => this.worker()));
      if (this.failure) throw this.failure;
      return { downloadedBytes: this.downloaded };
    } finally {
      this.first?.body.destroy();
      this.agent.destroy(); // kept-alive sockets would hold the worker thread open
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.ac.abort(err);
  }

  private async worker(): Promise<void> {
    while (!this.failure) {
      if (this.open >= this.limit) return; // the count was lowered: this connection retires
      const slot = this.queue.shift();
      if (!slot) return;
      this.open++;
      this.o.onConnections?.(this.open);
      let retry: RetryableError | undefined;
      try {
        await this.fetchSlot(slot);
      } catch (err) {
        if (err instanceof RetryableError && !this.signal.aborted) retry = err;
        else this.fail(this.signal.aborted && this.failure ? this.failure : (err as Error));
      } finally {
        this.open--;
        this.o.onConnections?.(this.open);
      }
      if (retry) await this.backOff(slot, retry);
    }
  }

  private async backOff(slot: Slot, err: RetryableError): Promise<void> {
    const retries = this.o.retries ?? 5;
    if (slot.failures > retries) {
      return this.fail(new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${this.o.url}: bytes ${slot.next}-${slot.range.end - 1} failed ${slot.failures} times in a row (${err.message})`, {
        cause: err, data: { url: this.o.url, offset: slot.next, attempts: slot.failures },
      }));
    }
    // A server that throttles us is asked less: one connection fewer, down to one.
    if (err.throttled && this.limit > 1) this.limit--;
    const delayMs = backoffDelay({ attempt: Math.max(1, slot.failures), initialMs: this.o.backoffInitialMs, maxMs: this.o.backoffMaxMs, retryAfter: err.retryAfter });
    this.o.onRetry?.({ range: slot.range, offset: slot.next, delayMs, reason: err.message, connections: this.limit });
    try {
      await sleep(delayMs, this.signal);
    } catch (e) {
      return this.fail(this.failure ?? (e as Error));
    }
    // Back at the front: the range nearest the start is the one an in-order reader waits for.
    const at = this.queue.findIndex((s) => s.range.start > slot.range.start);
    this.queue.splice(at < 0 ? this.queue.length : at, 0, slot);
  }

  private async open1(slot: Slot): Promise<HttpResponse> {
    if (this.first && slot.next === this.o.ranges[0]?.start) {
      const res = this.first;
      this.first = undefined;
      return res;
    }
    let res: HttpResponse;
    try {
      res = await httpGet(this.o.url, {
        offset: slot.next, end: slot.range.end, ifRange: this.o.validator, agent: this.agent, signal: this.signal,
        ...(this.o.headers ? { headers: this.o.headers } : {}),
        connectTimeoutMs: this.o.connectTimeoutMs, idleTimeoutMs: this.o.idleTimeoutMs,
      });
    } catch (err) {
      if (err instanceof DownloadError || this.signal.aborted) throw err; // redirect loop, bad scheme, abort
      throw new RetryableError((err as Error).message, { cause: err });
    }
    this.check(res, slot);
    return res;
  }

  /** Refuses any answer but the asked range of the same resource. */
  private check(res: HttpResponse, slot: Slot): void {
    const { url, validator } = this.o;
    const refuse = (why: string, code: ErrorCode = 'ERR_RANGE_UNSUPPORTED', data: Record<string, unknown> = {}) => {
      res.body.destroy();
      return new DownloadError(code, `Cannot download ${url} in segments: ${why}`, { data: { url, offset: slot.next, status: res.status, ...data } });
    };
    if (res.status === 200) throw refuse('the server answered a range request with the whole resource (200): it ignores ranges or the resource changed');
    if (res.status !== 206) {
      if (isRetryableStatus(res.status)) {
        res.body.destroy();
        throw new RetryableError(`the server answered HTTP ${res.status}`, { retryAfter: res.headers['retry-after'], throttled: res.status === 429 || res.status === 503 });
      }
      throw refuse(`the server answered HTTP ${res.status}`, 'ERR_HTTP_STATUS');
    }
    const cr = parseContentRange(res.headers['content-range']);
    if (cr?.start !== slot.next) throw refuse(`asked for bytes from ${slot.next}, got Content-Range ${res.headers['content-range']}`);
    const etag = res.headers.etag;
    if (isEtag(validator) && etag !== undefined && etag !== validator) throw refuse(`the ETag changed from ${validator} to ${etag}`, 'ERR_RANGE_UNSUPPORTED', { etag, expected: validator });
  }

  private async fetchSlot(slot: Slot): Promise<void> {
    const res = await this.open1(slot);
    const end = slot.range.end;
    let batch: Buffer[] = [];
    let batchLen = 0;
    let wrote = false;
    const flush = async () => {
      if (batchLen === 0) return;
      const at = slot.next;
      const bufs = batch;
      batch = [];
      batchLen = 0;
      await writeAllAt(this.o.fh, bufs, at);
      const n = bufs.reduce((a, b) => a + b.length, 0);
      slot.next += n;
      wrote = true;
      this.o.onWritten?.(at, at + n);
    };
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const room = end - slot.next - batchLen;
        const take = chunk.length > room ? chunk.subarray(0, room) : chunk;
        batch.push(take);
        batchLen += take.length;
        this.downloaded += take.length;
        if (batchLen >= BATCH || slot.next + batchLen >= end) await flush();
        if (slot.next >= end) break; // an open-ended probe body: the rest belongs to other ranges
      }
      await flush();
    } catch (err) {
      await flush().catch(() => undefined); // the write error, if any, surfaces below as the cause's sibling
      if (wrote) slot.failures = 0;
      else slot.failures++;
      if (this.signal.aborted) throw err;
      if (isDiskError(err)) throw err;
      throw new RetryableError(`the connection broke at byte ${slot.next} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    } finally {
      res.body.destroy();
    }
    if (slot.next < end) {
      if (wrote) slot.failures = 0;
      else slot.failures++;
      throw new RetryableError(`short body: got bytes up to ${slot.next}, expected up to ${end}`);
    }
    this.o.onRangeDone?.(slot.range);
  }
}

function isDiskError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EIO' || code === 'EDQUOT' || code === 'EBADF' || code === 'EROFS';
}
