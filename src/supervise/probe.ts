/**
 * Health probes for the supervised server: an HTTP probe (status and an
 * optional JSON subset such as {"status":"healthy"}), a probe that waits for
 * a log line, and `waitHealthy`, which polls until healthy, a deadline, the
 * process's exit, or an abort, whichever comes first. Every wait is bounded
 * and every timer is cleared when it settles.
 */
import http from 'node:http';
import https from 'node:https';
import { AbortError, ServerError } from '../base/errors.ts';

export interface HttpProbeOptions {
  /** http(s) URL to GET, normally on loopback. */
  url: string;
  /** Status the server must answer. @default 200 */
  status?: number;
  /** Keys (nested objects compared recursively) the JSON body must contain with these values. */
  json?: Record<string, unknown>;
  /** Time the whole probe may take, connect to last byte. @default 5000 */
  timeoutMs?: number;
  /** Largest body read; a health answer is small, a runaway one is cut. @default 65536 */
  maxBodyBytes?: number;
  signal?: AbortSignal;
}

export interface ProbeResult {
  ok: boolean;
  /** HTTP status, when an answer came. */
  status?: number;
  /** Why the probe failed, in words, e.g. "connect ECONNREFUSED", "status 503", "json mismatch". */
  reason?: string;
  /** The parsed JSON body, when `json` was asked for and the body parsed. */
  body?: unknown;
  /** How long the probe took. */
  ms: number;
}

/** True when every key of `expected` is in `actual` with an equal value (objects: recursively a subset). */
export function matchesSubset(expected: unknown, actual: unknown): boolean {
  if (expected === actual) return true;
  if (expected === null || actual === null || typeof expected !== 'object' || typeof actual !== 'object') return false;
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && expected.length === actual.length && expected.every((v, i) => matchesSubset(v, actual[i]));
  }
  return Object.entries(expected).every(([k, v]) => Object.hasOwn(actual, k) && matchesSubset(v, (actual as Record<string, unknown>)[k]));
}

/**
 * One GET. Never rejects: a refused connection, a timeout or a wrong answer
 * is `{ ok: false, reason }`, because "not healthy yet" is the normal case
 * while a server starts.
 */
export function httpProbe(opts: HttpProbeOptions): Promise<ProbeResult> {
  const t0 = performance.now();
  const expected = opts.status ?? 200;
  const maxBody = opts.maxBodyBytes ?? 64 * 1024;
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    let req: http.ClientRequest | undefined;
    const finish = (r: Omit<ProbeResult, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      req?.destroy();
      resolve({ ...r, ms: performance.now() - t0 });
    };
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    // Our own timer rather than the `timeout` option: that one is an idle timeout, not a bound on the whole probe.
    const timer = setTimeout(() => finish({ ok: false, reason: `timed out after ${opts.timeoutMs ?? 5000} ms` }), opts.timeoutMs ?? 5000);
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      return finish({ ok: false, reason: `invalid URL ${JSON.stringify(opts.url)}` });
    }
    const client = url.protocol === 'https:' ? https : http;
    // agent: false and Connection: close, so no pooled keep-alive socket outlives the probe.
    req = client.get(url, { agent: false, headers: { connection: 'close', accept: 'application/json' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== expected) {
        res.resume();
        return finish({ ok: false, status, reason: `status ${status}, expected ${expected}` });
      }
      if (!opts.json) {
        res.resume();
        return finish({ ok: true, status });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBody) return finish({ ok: false, status, reason: `body larger than ${maxBody} bytes` });
        chunks.push(c);
      });
      res.on('error', (err) => finish({ ok: false, status, reason: err.message }));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return finish({ ok: false, status, reason: 'body is not JSON' });
        }
        const ok = matchesSubset(opts.json, body);
        finish(ok ? { ok, status, body } : { ok, status, body, reason: 'json mismatch' });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: err.code ? `${err.code} ${err.message}` : err.message }));
  });
}

/** Becomes healthy when a line matching `pattern` is seen; fed by the supervisor with every output line. */
export class LogLineProbe {
  readonly pattern: RegExp;
  /** Resolves with the first matching line. */
  readonly matched: Promise<string>;
  #resolve!: (line: string) => void;
  #done = false;

  constructor(pattern: string | RegExp) {
    try {
      this.pattern = typeof pattern === 'string' ? new RegExp(pattern) : pattern;
    } catch (cause) {
      throw new ServerError('ERR_SERVER_CONFIG', `Cannot use health.logLine: ${JSON.stringify(pattern)} is not a valid regular expression`, { cause });
    }
    this.matched = new Promise((r) => (this.#resolve = r));
  }

  /** Tests one line; true when it is the first match. */
  feed(line: string): boolean {
    if (this.#done || !this.pattern.test(line)) return false;
    this.#done = true;
    this.#resolve(line);
    return true;
  }
}

/** How the process ended, as far as `waitHealthy` needs to know. */
export interface ProcessExit {
  code: number | null;
  signal: string | null;
  error?: Error;
}

export interface WaitHealthyOptions {
  /** Polled until it says ok. */
  probe?: (signal: AbortSignal) => Promise<ProbeResult>;
  /** Healthy as soon as it matches (no polling delay). */
  logLine?: LogLineProbe;
  /** Settles when the process ends: start failed. */
  exited?: Promise<ProcessExit>;
  signal?: AbortSignal;
  /** Deadline for becoming healthy, in ms. */
  timeoutMs: number;
  /** Longest pause between probes, in ms. */
  intervalMs: number;
  /**
   * Receives a function that makes the next probe happen now (unless one is in
   * flight). The supervisor calls it when the server prints a line: servers
   * announce readiness on stdout, so lander sees it without waiting a pause.
   */
  onProbeNow?: (probeNow: () => void) => void;
  /**
   * First pause between probes; it doubles up to `intervalMs`. A server that
   * is up in 100 ms is then seen in ~100 ms, not after a whole interval. @default 20
   */
  minIntervalMs?: number;
}

export interface HealthyResult {
  via: 'http' | 'log';
  /** From the call to healthy. */
  elapsedMs: number;
  /** HTTP probes made. */
  probes: number;
}

/**
 * Resolves when the server is healthy. Rejects with ServerError
 * `ERR_SERVER_UNHEALTHY` at the deadline, `ERR_SERVER_EXITED` when the process
 * ends first, or AbortError when `signal` aborts.
 */
export function waitHealthy(opts: WaitHealthyOptions): Promise<HealthyResult> {
  const t0 = performance.now();
  const { probe, logLine, exited, signal, timeoutMs, intervalMs } = opts;
  return new Promise<HealthyResult>((resolve, reject) => {
    let done = false;
    let probes = 0;
    let last: ProbeResult | undefined;
    let pollTimer: ReturnType<typeof setTimeout> | undefined;
    const inflight = new AbortController();
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearTimeout(pollTimer);
      inflight.abort();
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => finish(() => reject(new AbortError('Cannot wait for the server to become healthy: aborted', { cause: signal?.reason })));
    const deadline = setTimeout(() => finish(() => reject(new ServerError('ERR_SERVER_UNHEALTHY',
      `Cannot start the server: it did not become healthy within ${timeoutMs} ms${last?.reason ? ` (last probe: ${last.reason})` : ''}`,
      { data: { timeoutMs, probes, lastProbe: last } }))), timeoutMs);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    exited?.then((e) => finish(() => reject(new ServerError('ERR_SERVER_EXITED',
      `Cannot start the server: it exited before it became healthy (code ${e.code}, signal ${e.signal})`,
      { cause: e.error, data: { code: e.code, signal: e.signal, probes, lastProbe: last } }))));
    logLine?.matched.then(() => finish(() => resolve({ via: 'log', elapsedMs: performance.now() - t0, probes })));
    if (!probe) return;
    let pause = Math.min(opts.minIntervalMs ?? 20, intervalMs);
    let probing = false;
    const poll = async () => {
      clearTimeout(pollTimer);
      probing = true;
      probes++;
      last = await probe(inflight.signal);
      probing = false;
      if (done) return;
      if (last.ok) return finish(() => resolve({ via: 'http', elapsedMs: performance.now() - t0, probes }));
      pollTimer = setTimeout(poll, pause);
      pause = Math.min(pause * 2, intervalMs);
    };
    opts.onProbeNow?.(() => {
      if (!done && !probing) void poll();
    });
    void poll();
  });
}
