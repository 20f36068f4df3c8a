/**
 * One attempt at one URL for the install pipeline: a request from the bytes
 * the pipeline already has (Range + If-Range), a check of the answer, and
 * then either one stream (the body goes to the `.part` and the sink side by
 * side) or, for a large archive on a server that honours ranges, segments
 * over several connections into the `.part` while the sink reads its
 * contiguous prefix in order.
 */
import path from 'node:path';
import { DownloadError, hasCode } from '../base/errors.ts';
import { httpGet, isRetryableStatus, parseContentRange, type HttpResponse } from '../fetch/http-get.ts';
import { fetchRanges } from '../fetch/ranged-fetch.ts';
import { pipeKeepingReceived } from '../fetch/keep-received.ts';
import { mergeRanges, missingRanges, rangeBytes, segmentSize, splitRanges, type ByteRange } from '../fetch/byte-ranges.ts';
import type { AttemptOutcome } from '../fetch/mirrors.ts';
import type { InstallRequest, LogEvent } from '../../workers/protocol.ts';
import { Feed, type ArchiveSink } from './archive-sink.ts';
import { assertSpace, spaceNeed } from './disk-space.ts';
import { OrderedFeed } from './ordered-feed.ts';
import type { PartMeta, openPart } from './part-file.ts';

/** What an attempt reads and changes of the install job. */
export interface AttemptHost {
  readonly req: InstallRequest;
  readonly ctx: { signal: AbortSignal };
  readonly sink: ArchiveSink;
  readonly part: Awaited<ReturnType<typeof openPart>>;
  meta: PartMeta | undefined;
  url: string;
  downloaded: number;
  total: number | undefined;
  spaceChecked: boolean;
  covered: ByteRange[];
  singleStream: boolean;
  /** What the first stream showed of the link: slow ones get segments. */
  linkSpeed: 'slow' | 'fast' | undefined;
  /** Bytes per second the first stream brought while it was measured. */
  linkRate: number | undefined;
  connections: number;
  log(level: LogEvent['level'], event: string, fields: Record<string, unknown>, msg: string): void;
  restart(): Promise<void>;
  saveMeta(meta: PartMeta): Promise<void>;
  emitProgress(force: boolean): void;
}

/** Default for `download.connections`. */
export const DEFAULT_CONNECTIONS = 8;
/** Default for `download.segmentThresholdBytes`. */
export const DEFAULT_SEGMENT_THRESHOLD = 32 << 20;
/** Default for `download.segmentBelowBytesPerSec`. */
export const DEFAULT_SEGMENT_BELOW = 64 << 20;
/**
 * The first stream is measured for twice this long (from its first byte) or
 * this many bytes, whichever comes first; the rate is that of the second
 * half. The first half is what the server's socket buffers held: nginx with
 * `limit_rate 10m` hands over ~2 MB at once (100 MB/s over the first 20 ms),
 * then sends at its cap. Misjudging a fast link as slow costs little
 * (segments on loopback ran as fast as one stream: 2.4-2.6 s for 531 MB
 * either way), while every millisecond of probing on a capped link is spent
 * at one connection instead of eight: so it is short.
 */
const PROBE_MS = 20;
const PROBE_BYTES = 16 << 20;
/**
 * A link judged fast is rated once more over the second half of this window
 * from the decision: a burst the probe read late (this thread busy for more
 * than its first half) passes for a fast link, and the capped stream then ran
 * at one connection to the end. Skipped while the stream waits on our side
 * (the `.part` write or the extraction): that is not the link's rate.
 */
const RECHECK_MS = 300;

/** One attempt at `url`; see the module comment. */
export async function attemptDownload(job: AttemptHost, url: string): Promise<AttemptOutcome> {
  job.url = url;
  const offset = job.sink.bytes;
  const sameSource = job.meta?.url === url;
  if (!sameSource) job.covered = []; // segments from another server are not vouched for by this one's validator
  let res: HttpResponse;
  try {
    res = await httpGet(url, {
      offset, ifRange: sameSource ? (job.meta?.etag ?? job.meta?.lastModified) : undefined, signal: job.ctx.signal,
      ...(job.req.headers?.[url] ? { headers: job.req.headers[url] } : {}),
      connectTimeoutMs: job.req.download.connectTimeoutMs, idleTimeoutMs: job.req.download.idleTimeoutMs,
    });
  } catch (err) {
    if (job.ctx.signal.aborted) return { kind: 'fatal', error: err as Error };
    if (err instanceof DownloadError) return { kind: 'next-url', error: err }; // redirect loop or bad scheme
    return { kind: 'retry', error: err as Error };
  }
  const verdict = await accept(job, url, res, offset, sameSource);
  if (verdict) return verdict;
  const segmentable = canSegment(job, url, res);
  if (segmentable && job.linkSpeed === 'slow') return segmented(job, url, res);
  job.connections = 1;
  try {
    return await streamBody(job, res, segmentable && job.linkSpeed === undefined);
  } finally {
    job.connections = 0;
  }
}

/** Checks the answer and records what it says; an outcome when the body is not to be read. */
async function accept(job: AttemptHost, url: string, res: HttpResponse, offset: number, sameSource: boolean): Promise<AttemptOutcome | undefined> {
  const { req } = job;
  const status = res.status;
  if (status === 416 && offset > 0) {
    res.body.destroy();
    const cr = parseContentRange(res.headers['content-range']);
    if (cr?.total === offset) { job.total = offset; return { kind: 'complete' }; }
    await restartLogged(job, url, 'the server refused the range (416)');
    return { kind: 'retry', error: new Error('HTTP 416 for the resume range') };
  }
  if (status !== 200 && status !== 206) {
    res.body.destroy();
    const error = new DownloadError('ERR_HTTP_STATUS', `Cannot download ${url}: the server answered HTTP ${status}`, { data: { url, status } });
    return isRetryableStatus(status) ? { kind: 'retry', error, retryAfter: res.headers['retry-after'] } : { kind: 'next-url', error };
  }
  if (status === 206) {
    const cr = parseContentRange(res.headers['content-range']);
    if (offset === 0 || cr?.start !== offset) {
      res.body.destroy();
      await restartLogged(job, url, `the server sent a range starting at ${cr?.start}, not ${offset}`);
      return { kind: 'retry', error: new Error(`wrong Content-Range ${res.headers['content-range']}`) };
    }
    job.total = cr.total ?? job.total;
  } else {
    if (offset > 0) await restartLogged(job, url, 'the server ignored the range or the file changed (200)');
    const len = Number(res.headers['content-length']);
    job.total = Number.isSafeInteger(len) ? len : undefined;
  }
  if (req.maxBytes !== undefined && job.total !== undefined && job.total > req.maxBytes) {
    res.body.destroy();
    return { kind: 'fatal', error: new DownloadError('ERR_SIZE_LIMIT', `Cannot download ${url}: it is ${job.total} bytes, over the ${req.maxBytes}-byte limit`, { data: { url, size: job.total, maxBytes: req.maxBytes } }) };
  }
  if (req.disk && job.total !== undefined && !job.spaceChecked) {
    job.spaceChecked = true;
    try {
      const need = spaceNeed({ archiveBytes: job.total, alreadyOnDisk: offset + rangeBytes(job.covered), expansionEstimate: req.disk.expansionEstimate, marginBytes: req.disk.marginBytes });
      await assertSpace(path.dirname(req.stagingDir), need, `${req.component} ${req.version}`);
    } catch (err) {
      res.body.destroy();
      return { kind: 'fatal', error: err as Error };
    }
  }
  if (status === 200 || !sameSource) {
    await job.saveMeta({ url, etag: res.headers.etag, lastModified: res.headers['last-modified'], total: job.total });
  }
  return undefined;
}

async function restartLogged(job: AttemptHost, url: string, reason: string): Promise<void> {
  job.log('warn', 'download.restart', { url, reason, discarded: job.sink.bytes }, 'restarting the download from zero');
  job.total = undefined;
  await job.restart();
}

/**
 * One stream: the body goes to the `.part` at the end and through the sink.
 * With `probe`, the first bytes measure the link: a slow one is left for
 * segments (`again`), a fast one keeps this stream.
 */
async function streamBody(job: AttemptHost, res: HttpResponse, probe: boolean): Promise<AttemptOutcome> {
  const feed = new Feed(job.sink, { fh: job.part.fh, position: job.sink.bytes });
  const start = job.sink.bytes;
  const d = job.req.download;
  const probeBytes = Math.min(PROBE_BYTES, d.segmentBytes ?? PROBE_BYTES);
  const probeMs = d.segmentBytes !== undefined ? 0 : PROBE_MS; // a set segment size (tests, tiny archives) decides on its bytes alone
  let seen = 0;
  let t0 = 0;
  /** Bytes and time when the first half of the probe ended (the burst from the server's buffers). */
  let half: { seen: number; at: number } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const toSegments = new Error('the link is slow: switching to segments');
  // Decided on the clock, not only on the next chunk: a capped server sends in bursts (nginx's
  // limit_rate waits ~100-200 ms between them), and waiting for the next burst to decide cost
  // 200 ms at one connection instead of 50.
  const below = d.segmentBelowBytesPerSec ?? DEFAULT_SEGMENT_BELOW;
  // A timer runs before the turn's socket reads: a rate taken in it would miss the bytes that
  // waited while this thread was busy, and a busy thread is not a slow link.
  const afterReads = (f: () => void) => () => void setImmediate(f);
  const rateSince = (from: { seen: number; at: number }) => (seen - from.seen) / Math.max(1e-3, (performance.now() - from.at) / 1000);
  if (probe) job.sink.holdHashing(true);
  const decide = () => {
    if (!probe) return;
    probe = false;
    job.sink.holdHashing(false);
    if (timer) clearTimeout(timer);
    const rate = rateSince(half ?? { seen: 0, at: t0 });
    job.linkSpeed = rate < below ? 'slow' : 'fast';
    job.linkRate = Math.round(rate);
    if (job.linkSpeed === 'slow') return void res.body.destroy(toSegments);
    timer = setTimeout(() => {
      const from = { seen, at: performance.now() };
      timer = setTimeout(afterReads(() => recheck(from)), RECHECK_MS / 2);
    }, RECHECK_MS / 2);
  };
  const recheck = (from: { seen: number; at: number }) => {
    if (res.body.destroyed) return;
    // Past the recheck the stream stays one stream: on a link this fast, bytes bypass the .part.
    const fast = () => { if (!job.req.download.keepPart) job.sink.bypassPart(); };
    if (feed.writableNeedDrain || res.body.isPaused()) return fast();
    const rate = rateSince(from);
    if (rate >= below) return fast();
    job.log('info', 'download.recheck', { url: job.url, probedRate: job.linkRate, linkRate: Math.round(rate), below }, 'the link is slower than its first bytes said: switching to segments');
    job.linkSpeed = 'slow';
    job.linkRate = Math.round(rate);
    res.body.destroy(toSegments);
  };
  res.body.on('data', (c: Buffer) => {
    job.downloaded += c.length;
    const first = seen === 0;
    seen += c.length; // after the probe too: the recheck rates the stream by it
    if (!probe) return;
    if (first) {
      t0 = performance.now();
      if (probeMs > 0) {
        timer = setTimeout(() => {
          half = { seen, at: performance.now() };
          timer = setTimeout(afterReads(decide), probeMs);
        }, probeMs);
      }
    }
    if (seen < probeBytes) return;
    decide();
  });
  res.body.once('close', () => {
    if (timer) clearTimeout(timer);
    if (probe) job.sink.holdHashing(false);
  });
  try {
    // A break keeps every byte received: the feed writes out what it buffered before the retry's Range.
    await pipeKeepingReceived(res.body, feed);
  } catch (err) {
    await feed.inflight; // the .part must hold exactly the hashed bytes before the next Range
    if (err === toSegments && !feed.fatal) return { kind: 'again', reason: toSegments.message };
    if (feed.fatal) return { kind: 'fatal', error: feed.fatal };
    if (job.ctx.signal.aborted) return { kind: 'fatal', error: err as Error };
    return { kind: 'retry', error: describeBreak(err as Error, job.sink.bytes - start) };
  }
  if (job.total !== undefined && job.sink.bytes < job.total) {
    return { kind: 'retry', error: new Error(`short body: ${job.sink.bytes} of ${job.total} bytes`) };
  }
  return { kind: 'complete' };
}

function describeBreak(err: Error, got: number): Error {
  const code = (err as NodeJS.ErrnoException).code;
  return new Error(`the connection broke after ${got} bytes (${code ?? err.message})`, { cause: err });
}

/** A large archive, an http(s) server that honours ranges and a validator for If-Range: segments pay. */
function canSegment(job: AttemptHost, url: string, res: HttpResponse): boolean {
  const d = job.req.download;
  const connections = d.connections ?? DEFAULT_CONNECTIONS;
  if (connections < 2 || job.singleStream || job.total === undefined) return false;
  if (!/^https?:$/.test(new URL(url).protocol)) return false;
  if (res.status !== 206 && res.headers['accept-ranges'] !== 'bytes') return false;
  if (!res.headers.etag && !res.headers['last-modified']) return false;
  return job.total - job.sink.bytes >= (d.segmentThresholdBytes ?? DEFAULT_SEGMENT_THRESHOLD);
}

/**
 * Segments: the probe's body serves the first one, up to `connections`
 * keep-alive connections the others, each into the `.part` at its offset;
 * the sink reads the contiguous prefix as it grows. `.part.json` records
 * finished segments, so a resume fetches only what is missing.
 */
async function segmented(job: AttemptHost, url: string, probe: HttpResponse): Promise<AttemptOutcome> {
  const { req } = job;
  const d = req.download;
  const total = job.total!;
  const offset = job.sink.bytes;
  const validator = (probe.headers.etag ?? probe.headers['last-modified'])!;
  const connections = d.connections ?? DEFAULT_CONNECTIONS;
  const onDisk = mergeRanges([{ start: 0, end: offset }, ...job.covered]);
  const missing = missingRanges(onDisk, offset, total);
  const segBytes = d.segmentBytes ?? segmentSize(rangeBytes(missing), connections);
  const ranges = splitRanges(missing, segBytes);
  const first = ranges[0]?.start === offset ? probe : undefined;
  if (!first) probe.body.destroy();
  // Before any byte lands out of order: the metadata must never let the file's size pass for its prefix.
  let done = onDisk;
  await job.saveMeta({ ...(job.meta ?? { url }), url, total, done });
  job.log('info', 'download.segmented', { url, linkRate: job.linkRate, connections, segments: ranges.length, segmentBytes: segBytes, offset, total, reused: rangeBytes(job.covered) }, 'downloading in segments');
  const feed = new OrderedFeed({ fh: job.part.fh, sink: job.sink, total, covered: onDisk });
  const ac = new AbortController();
  const feeding = feed.run().catch((err: Error) => { ac.abort(err); throw err; });
  let fetchError: Error | undefined;
  try {
    await fetchRanges({
      url, fh: job.part.fh, ranges, validator, connections, first,
      ...(job.req.headers?.[url] ? { headers: job.req.headers[url] } : {}),
      signal: AbortSignal.any([job.ctx.signal, ac.signal]),
      connectTimeoutMs: d.connectTimeoutMs, idleTimeoutMs: d.idleTimeoutMs,
      retries: d.retries, backoffInitialMs: d.backoffInitialMs, backoffMaxMs: d.backoffMaxMs,
      onWritten: (from, to) => { job.downloaded += to - from; feed.add(from, to); job.emitProgress(false); },
      onRangeDone: (r) => { done = mergeRanges([...done, r]); void job.saveMeta({ ...job.meta!, done }).catch(() => undefined); },
      onConnections: (n) => { job.connections = n; },
      onRetry: (i) => job.log('warn', 'download.segment-retry', { url, offset: i.offset, end: i.range.end, delayMs: i.delayMs, reason: i.reason, connections: i.connections }, 'retrying a segment'),
    });
    feed.end();
  } catch (err) {
    fetchError = err as Error;
    feed.stop();
  } finally {
    job.connections = 0;
  }
  try {
    await feeding;
  } catch (err) {
    return { kind: 'fatal', error: err as Error }; // the archive, the size cap or the disk: not the server
  }
  job.covered = feed.covered.filter((r) => r.end > job.sink.bytes);
  if (!fetchError) return { kind: 'complete' };
  // Every byte written so far is on disk, also the start of segments cut short: a stop (SIGTERM,
  // a superseded job) then costs nothing again; only a hard kill loses the unrecorded ones.
  await job.saveMeta({ ...job.meta!, done: mergeRanges([...done, ...feed.covered]) }).catch(() => undefined);
  if (job.ctx.signal.aborted) return { kind: 'fatal', error: fetchError };
  if (hasCode(fetchError, 'ERR_RANGE_UNSUPPORTED')) {
    // One stream from the bytes fed so far; bytes past them are dropped, so nothing of another version stays.
    job.singleStream = true;
    job.covered = [];
    await job.part.fh.truncate(job.sink.bytes);
    await job.saveMeta({ url, etag: job.meta?.etag, lastModified: job.meta?.lastModified, total });
    job.log('warn', 'download.single-stream', { url, reason: fetchError.message, offset: job.sink.bytes }, 'the server cannot serve segments; continuing with one stream');
  }
  return { kind: 'retry', error: fetchError };
}
