/**
 * Polls the release manifest with conditional GETs (If-None-Match,
 * If-Modified-Since) at the configured interval plus jitter, and hands each
 * new, valid manifest to the daemon. A broken or unreachable manifest is
 * reported and the last good one stays in force; failed polls are retried
 * sooner, with backoff, so one bad minute does not cost a whole interval.
 */
import type { DownloadConfig, ManifestConfig } from './schema.ts';
import { DownloadError, LanderError, ManifestError } from '../base/errors.ts';
import { backoffDelay } from '../base/backoff.ts';
import { httpGet, type HttpResponse } from '../fetch/http-get.ts';
import { readBounded } from '../fetch/read-bounded.ts';
import type { Logger } from '../report/log.ts';
import { parseManifest, type ParsedManifest } from './manifest.ts';
import { loadPublicKey, signatureUrl, signedSequence, verifyManifestSignature, type ManifestSignatureInfo } from './manifest-signature.ts';

/** What one poll found. */
export type PollOutcome = 'changed' | 'not-modified' | 'error';

/** The HTTP side of a poll that produced a manifest. */
export interface ManifestFetchInfo {
  status: number;
  etag?: string;
  lastModified?: string;
  /** With `publicKey`: what the verified signature vouched for; `manifest.sequence` is then set. */
  signature?: ManifestSignatureInfo;
}

/** The poller's view, shaped like `DaemonStatus['manifest']`. */
export interface ManifestPollerStatus {
  url: string;
  lastCheckAt?: string;
  lastStatus?: number;
  etag?: string;
  /** The last poll's failure; cleared by the next good poll. */
  error?: string;
  /** Sequence of the manifest in force. */
  sequence?: number;
  /** Key id that signed the manifest in force, when signatures are required. */
  signedBy?: string;
}

export interface ManifestPollerOptions {
  /** The config's `manifest` section: url, format, component, interval, jitter. */
  config: ManifestConfig;
  log: Logger;
  /** Timeouts and the retry backoff, from the config's `download` section. @default the config defaults */
  download?: Partial<Pick<DownloadConfig, 'connectTimeout' | 'idleTimeout' | 'backoffInitial' | 'backoffMax'>>;
  /** Largest manifest body accepted. @default 1048576 (1 MiB) */
  maxBytes?: number;
  /**
   * With `config.publicKey`: the sequence of the last signed manifest
   * accepted before (persisted by the caller); a lower one is refused.
   */
  acceptedSequence?: number;
  /** Shortest wait between scheduled polls, whatever the interval says. @default 1000 */
  minDelayMs?: number;
  /** A new, valid manifest (its body differs from the last good one). */
  onManifest(manifest: ParsedManifest, info: ManifestFetchInfo): void;
  /** A poll failed (network, HTTP status, size, parse, signature, expiry, sequence); the last good manifest stays in force. */
  onError(err: LanderError): void;
  /** A number in [0, 1), for jitter. @default Math.random */
  random?: () => number;
  /** Current time in ms, for `expires`. @default Date.now */
  now?: () => number;
}

export interface PollDelayOptions {
  intervalMs: number;
  /** Spread added to the interval, as a fraction of it, in [0, 1]. */
  jitter: number;
  /** Polls failed in a row. @default 0 */
  failures?: number;
  /** @default 1000 */
  backoffInitialMs?: number;
  /** @default 30000 */
  backoffMaxMs?: number;
  /** Floor of every delay, so a zero interval cannot spin. @default 1000 */
  minMs?: number;
  /**
   * The first scheduled poll after the start-up one: with a jitter, it comes
   * after a random share of the interval, `U[0, interval)`, so a fleet
   * started together (a power cut, a config push) spreads over one whole
   * interval at once instead of drifting apart by `jitter` per poll.
   * @default false
   */
  first?: boolean;
  /** @default Math.random */
  random?: () => number;
}

/**
 * Delay before the next poll (pure): `interval + U[0, jitter * interval)`,
 * so that many landers started together drift apart instead of hitting the
 * release server in step. After failures, the retry comes sooner, on the
 * backoff schedule (at least `backoffInitialMs`), but never later than the interval.
 * The first scheduled poll comes after a random share of the interval (see `first`).
 *
 * @example nextPollDelay({ intervalMs: 3_600_000, jitter: 0.1 }) // in [3_600_000, 3_960_000)
 */
export function nextPollDelay(o: PollDelayOptions): number {
  const random = o.random ?? Math.random;
  const base = o.first && o.jitter > 0 ? Math.floor(random() * o.intervalMs) : o.intervalMs + Math.floor(random() * o.jitter * o.intervalMs);
  let d = base;
  if ((o.failures ?? 0) > 0) {
    const initialMs = o.backoffInitialMs ?? 1000;
    const retry = Math.max(initialMs, backoffDelay({ attempt: o.failures!, initialMs, maxMs: o.backoffMaxMs ?? 30_000, random }));
    d = Math.min(base, retry);
  }
  return Math.max(o.minMs ?? 1000, d);
}

const DEFAULT_MAX_BYTES = 1024 * 1024;
/** A .minisig is four short lines; minisign caps each comment at 1 KiB. */
const MAX_SIGNATURE_BYTES = 8 * 1024;

/**
 * @example
 * const poller = new ManifestPoller({ config: config.manifest, log, download: config.download, onManifest, onError });
 * poller.start();
 * await poller.pollNow(); // 'changed' | 'not-modified' | 'error'
 */
export class ManifestPoller {
  readonly #o: ManifestPollerOptions;
  #manifest: ParsedManifest | undefined;
  /** Validators and text of the last GOOD manifest only: a broken one must be fetched (and reported) again. */
  #etag: string | undefined;
  #lastModified: string | undefined;
  #text: string | undefined;
  /** The signature that went with the last good manifest, and its ETag. */
  #sigEtag: string | undefined;
  #sigText: string | undefined;
  #failures = 0;
  #status: ManifestPollerStatus;
  #running = false;
  /** A poll was scheduled since start(): only the first one gets the random phase. */
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<PollOutcome> | undefined;
  #abort: AbortController | undefined;

  constructor(opts: ManifestPollerOptions) {
    this.#o = opts;
    this.#status = { url: opts.config.url };
  }

  /** The last good manifest, if any. */
  get manifest(): ParsedManifest | undefined {
    return this.#manifest;
  }

  status(): ManifestPollerStatus {
    return { ...this.#status };
  }

  /** Polls now, then at the interval until `stop()`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#scheduled = false;
    void this.pollNow().catch(() => undefined);
  }

  /**
   * Polls now. A poll already in flight is joined, not doubled. Resolves
   * after `onManifest` or `onError` ran; rejects only when `onManifest` throws.
   */
  pollNow(): Promise<PollOutcome> {
    if (this.#inflight) return this.#inflight;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const p = this.#poll().finally(() => {
      this.#inflight = undefined;
      this.#schedule();
    });
    this.#inflight = p;
    return p;
  }

  /** Stops the schedule and aborts a poll in flight (it resolves `'error'` without calling `onError`). */
  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort(new Error('the manifest poller was stopped'));
  }

  #schedule(): void {
    if (!this.#running) return;
    const { config, download } = this.#o;
    const delayMs = nextPollDelay({
      intervalMs: config.interval,
      jitter: config.jitter,
      failures: this.#failures,
      backoffInitialMs: download?.backoffInitial,
      backoffMaxMs: download?.backoffMax,
      minMs: this.#o.minDelayMs,
      first: !this.#scheduled,
      random: this.#o.random,
    });
    this.#scheduled = true;
    this.#o.log.debug({ event: 'manifest.next', url: config.url, delayMs, failures: this.#failures }, 'next manifest poll scheduled');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.pollNow().catch((err: unknown) => this.#o.log.error({ event: 'manifest.error', url: config.url, err }, 'the manifest handler failed'));
    }, delayMs);
    // The daemon's other handles keep the process alive; a pending poll alone must not.
    this.#timer.unref?.();
  }

  async #poll(): Promise<PollOutcome> {
    const { config, log } = this.#o;
    const url = config.url;
    const now = this.#o.now ?? Date.now;
    const ac = new AbortController();
    this.#abort = ac;
    let fetched: { parsed: ParsedManifest; info: ManifestFetchInfo } | PollOutcome;
    try {
      fetched = await this.#fetch(url, ac.signal, now);
    } catch (cause) {
      this.#status.lastCheckAt = new Date(now()).toISOString();
      if (ac.signal.aborted) {
        log.debug({ event: 'manifest.aborted', url }, 'manifest poll aborted');
        return 'error';
      }
      const err = cause instanceof LanderError ? cause
        : new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download the manifest ${url}: ${(cause as Error).message}`, { cause, data: { url } });
      this.#failures++;
      this.#status.error = err.message;
      log.warn({ event: 'manifest.error', url, code: err.code, err, failures: this.#failures }, 'manifest poll failed; keeping the last good manifest');
      this.#o.onError(err);
      return 'error';
    } finally {
      if (this.#abort === ac) this.#abort = undefined;
    }
    this.#status.lastCheckAt = new Date(now()).toISOString();
    this.#failures = 0;
    delete this.#status.error;
    if (typeof fetched === 'string') return fetched;
    this.#manifest = fetched.parsed;
    const { etag } = fetched.info;
    if (fetched.parsed.sequence !== undefined) this.#status.sequence = fetched.parsed.sequence;
    if (fetched.info.signature) this.#status.signedBy = fetched.info.signature.keyId;
    log.info({ event: 'manifest.changed', url, etag, sequence: fetched.parsed.sequence, signedBy: fetched.info.signature?.keyId, components: Object.fromEntries(Object.entries(fetched.parsed.components).map(([n, c]) => [n, c.version])) }, 'new release manifest');
    this.#o.onManifest(fetched.parsed, fetched.info);
    return 'changed';
  }

  /** One conditional GET; throws on anything that is not a usable answer. */
  async #fetch(url: string, signal: AbortSignal, now: () => number): Promise<{ parsed: ParsedManifest; info: ManifestFetchInfo } | PollOutcome> {
    const { config, download, log } = this.#o;
    const headers: Record<string, string> = {};
    if (this.#etag) headers['if-none-match'] = this.#etag;
    if (this.#lastModified) headers['if-modified-since'] = this.#lastModified;
    const res = await httpGet(url, { connectTimeoutMs: download?.connectTimeout, idleTimeoutMs: download?.idleTimeout, headers, signal });
    this.#status.lastStatus = res.status;
    if (res.status === 304) {
      res.body.destroy();
      this.#checkStillValid(url, now);
      log.debug({ event: 'manifest.not-modified', url, etag: this.#etag }, 'manifest not modified');
      return 'not-modified';
    }
    if (res.status !== 200) {
      res.body.destroy();
      throw new DownloadError('ERR_HTTP_STATUS', `Cannot download the manifest ${url}: the server answered HTTP ${res.status}`, { data: { url, status: res.status } });
    }
    const bytes = await readManifestBody(res, url, this.#o.maxBytes ?? DEFAULT_MAX_BYTES);
    const text = bytes.toString('utf8');
    const info: ManifestFetchInfo = { status: res.status };
    if (res.headers.etag) info.etag = res.headers.etag;
    if (res.headers['last-modified']) info.lastModified = res.headers['last-modified'];
    if (text === this.#text) {
      // A server (or file: URL) that ignores conditional requests sends the same body again.
      this.#etag = info.etag;
      this.#lastModified = info.lastModified;
      this.#checkStillValid(url, now);
      log.debug({ event: 'manifest.not-modified', url, etag: info.etag }, 'manifest body unchanged');
      return 'not-modified';
    }
    // The signature is checked before the body is even parsed: nothing unsigned is looked at.
    const sig = config.publicKey === undefined ? undefined : await this.#verify(url, bytes, signal);
    const parsed = parseManifest(text, { format: config.format, url, component: config.component, now: now() });
    if (sig) {
      parsed.sequence = signedSequence(url, parsed, sig.info);
      info.signature = sig.info;
    }
    const floor = [this.#manifest?.sequence, sig ? this.#o.acceptedSequence : undefined].filter((n): n is number => n !== undefined);
    const before = floor.length > 0 ? Math.max(...floor) : undefined;
    if (before !== undefined && (parsed.sequence === undefined || parsed.sequence < before)) {
      throw new ManifestError(`Cannot use the manifest ${url}: its sequence went back from ${before} to ${parsed.sequence ?? '(none)'}; an old release is being served (stale mirror or replay)`, {
        data: { url, issues: [{ path: 'sequence', message: `Expected ${before} or more, got ${parsed.sequence ?? '(none)'}` }] },
      });
    }
    this.#etag = info.etag;
    this.#lastModified = info.lastModified;
    this.#text = text;
    if (sig) {
      this.#sigEtag = sig.etag;
      this.#sigText = sig.text;
    }
    return { parsed, info };
  }

  /**
   * Fetches `<url>.minisig` (conditionally: a 304 means the signature of the
   * last good manifest, which then fails against a new body, as it must)
   * and verifies the manifest's bytes with it.
   */
  async #verify(url: string, bytes: Buffer, signal: AbortSignal): Promise<{ info: ManifestSignatureInfo; text: string; etag?: string }> {
    const { config, download } = this.#o;
    const key = await loadPublicKey(config.publicKey!);
    const sigUrl = signatureUrl(url);
    const headers: Record<string, string> = this.#sigEtag ? { 'if-none-match': this.#sigEtag } : {};
    const res = await httpGet(sigUrl, { connectTimeoutMs: download?.connectTimeout, idleTimeoutMs: download?.idleTimeout, headers, signal });
    let text: string;
    let etag = res.headers.etag;
    if (res.status === 304 && this.#sigText !== undefined) {
      res.body.destroy();
      text = this.#sigText;
      etag = this.#sigEtag;
    } else if (res.status === 200) {
      text = (await readManifestBody(res, sigUrl, MAX_SIGNATURE_BYTES)).toString('utf8');
    } else {
      res.body.destroy();
      throw new DownloadError('ERR_HTTP_STATUS', `Cannot use the manifest ${url}: its signature ${sigUrl} could not be fetched (HTTP ${res.status}); manifest.publicKey is set, so every manifest must be signed`, { data: { url, signatureUrl: sigUrl, status: res.status } });
    }
    return { info: verifyManifestSignature(url, bytes, text, key), text, ...(etag ? { etag } : {}) };
  }

  /** A manifest that expired while the server keeps answering 304 is not good any more. */
  #checkStillValid(url: string, now: () => number): void {
    const expires = this.#manifest?.expires;
    if (expires !== undefined && Date.parse(expires) <= now()) {
      throw new ManifestError(`Cannot use the manifest ${url}: it expired at ${expires} and the server still serves it`, { data: { url, issues: [{ path: 'expires', message: `Expired at ${expires}` }] } });
    }
  }
}

/** Reads the manifest body (capped); a short one fails this poll. */
async function readManifestBody(res: HttpResponse, url: string, maxBytes: number): Promise<Buffer> {
  const { body, declared } = await readBounded(res, maxBytes, `the manifest ${url}`);
  if (declared !== undefined && body.length !== declared) {
    throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download the manifest ${url}: short body, ${body.length} of ${declared} bytes`, { data: { url, bytes: body.length, declared } });
  }
  return body;
}
