/**
 * The one pass: network → `.part` + SHA-256 + size cap → gunzip → tar →
 * staging. Resumes from an earlier `.part` by replaying its bytes through
 * the same pipeline, then asking for the rest with Range/If-Range. Runs in
 * the install worker; `post` carries progress and log events out.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline as pipe } from 'node:stream/promises';
import { AbortError, ArchiveError, DigestMismatchError, DownloadError, LanderError, hasCode } from '../base/errors.ts';
import { assertSpace, diskFullError, spaceNeed } from './disk-space.ts';
import { backoffDelay, sleep } from '../base/backoff.ts';
import { httpGet, isRetryableStatus, parseContentRange, type HttpResponse } from '../fetch/http-get.ts';
import type { DoneEvent, InstallRequest, LogEvent, ProgressEvent } from '../../workers/protocol.ts';
import { ArchiveSink, Feed } from './archive-sink.ts';
import { startExtraction } from './extract.ts';
import { openPart, readPartMeta, removePart, writePartMeta, type PartMeta } from './part-file.ts';

export interface PipelineContext {
  signal: AbortSignal;
  post(e: ProgressEvent | LogEvent): void;
}

/** A hard cap on attempts per URL even while each attempt makes progress (every loop has a cap). */
const PROGRESS_ATTEMPTS_FACTOR = 50;

/** Runs one install request to a verified staging tree; see the module comment. */
export async function runInstallPipeline(req: InstallRequest, ctx: PipelineContext): Promise<DoneEvent> {
  const job = new InstallJob(req, ctx);
  return job.run();
}

class InstallJob {
  private readonly req: InstallRequest;
  private readonly ctx: PipelineContext;
  private sink!: ArchiveSink;
  private part!: Awaited<ReturnType<typeof openPart>>;
  private meta: PartMeta | undefined;
  private url = '';
  private downloaded = 0;
  private reused = 0;
  private total: number | undefined;
  private lastProgress = 0;
  private lastProgressDownloaded = 0;
  private spaceChecked = false;

  constructor(req: InstallRequest, ctx: PipelineContext) {
    this.req = req;
    this.ctx = ctx;
    this.url = req.urls[0] ?? '';
  }

  private log(level: LogEvent['level'], event: string, fields: Record<string, unknown>, msg: string): void {
    this.ctx.post({ type: 'log', level, event, fields: { jobId: this.req.jobId, ...fields }, msg });
  }

  async run(): Promise<DoneEvent> {
    const { req } = this;
    let partIsBad = false;
    try {
      this.ctx.signal.throwIfAborted();
      this.meta = await readPartMeta(req.partPath);
      this.part = await openPart(req.partPath);
      let offset = this.part.size;
      if (offset > 0 && (!this.meta || (req.maxBytes !== undefined && offset > req.maxBytes) || (this.meta.total !== undefined && offset > this.meta.total))) {
        await this.part.fh.truncate(0); // bytes we cannot vouch for
        offset = 0;
      }
      await this.newSink();
      if (offset > 0) {
        this.total = this.meta!.total;
        this.log('info', 'download.resume', { offset, url: this.meta!.url }, 'resuming from the partial download');
        try {
          await pipe(createReadStream(req.partPath, { start: 0, end: offset - 1, highWaterMark: 1 << 20 }), new Feed(this.sink), { signal: this.ctx.signal });
          this.reused = offset;
        } catch (err) {
          if (!(err instanceof ArchiveError)) throw err;
          this.log('warn', 'download.restart', { reason: err.message }, 'the partial download does not extract; starting over');
          await this.restart();
        }
      } else {
        this.log('info', 'download.start', { url: this.url, total: this.meta?.total }, 'downloading');
      }
      let actual: string;
      for (let from = 0; ; ) {
        const used = await this.download(from);
        actual = this.sink.digest();
        if (actual === req.sha256) break;
        const mismatch = new DigestMismatchError(
          `Cannot install ${req.component} ${req.version}: the archive's SHA-256 from ${this.url} is ${actual}, expected ${req.sha256}`,
          { data: { component: req.component, version: req.version, url: this.url, expected: req.sha256, actual, bytes: this.sink.bytes } },
        );
        if (used + 1 >= req.urls.length) {
          partIsBad = true;
          throw mismatch;
        }
        // The digest comes from the config or the manifest, never from a mirror: a mirror serving other bytes is skipped.
        this.log('warn', 'download.mirror-mismatch', { url: this.url, next: req.urls[used + 1], expected: req.sha256, actual }, 'the archive from this mirror does not match the expected digest; trying the next mirror from zero');
        this.meta = undefined;
        this.total = undefined;
        await this.restart();
        from = used + 1;
      }
      this.sink.extraction.input.end();
      await this.sink.extraction.finished;
      this.emitProgress(true);
      await this.part.fh.close();
      // The .part stays until the caller has committed the tree to the store: a crash before that
      // replays it from disk instead of downloading it again (the caller then removes it).
      return {
        type: 'done', jobId: req.jobId, sha256: actual, bytes: this.sink.bytes, downloadedBytes: this.downloaded,
        reusedBytes: this.reused, extractedBytes: this.sink.extraction.extractedBytes(), files: this.sink.extraction.files,
      };
    } catch (e) {
      let err = e;
      if (this.ctx.signal.aborted && !(err instanceof LanderError && !hasCode(err, 'ERR_ABORTED'))) {
        err = new AbortError(`Cannot install ${req.component} ${req.version}: aborted (${String((this.ctx.signal.reason as Error)?.message ?? this.ctx.signal.reason)})`, { cause: e });
      }
      if (hasCode(err, 'ENOSPC') && !hasCode(err, 'ERR_DISK_FULL')) err = diskFullError(path.dirname(req.stagingDir), `${req.component} ${req.version}`, err);
      // Bytes that fail to decompress or parse, or exceed the cap, would fail again: drop them.
      if (err instanceof ArchiveError || hasCode(err, 'ERR_SIZE_LIMIT')) partIsBad = true;
      await this.cleanup(err as Error, partIsBad);
      throw err;
    }
  }

  private async cleanup(err: Error, partIsBad: boolean): Promise<void> {
    if (this.sink) {
      this.sink.extraction.abort(err);
      await this.sink.extraction.finished.catch(() => undefined); // already reported as `err`
    }
    await this.part?.fh.close().catch(() => undefined); // closing twice after success paths is harmless
    await rm(this.req.stagingDir, { recursive: true, force: true });
    if (partIsBad) await removePart(this.req.partPath);
  }

  private async newSink(): Promise<void> {
    const extraction = await startExtraction({
      component: this.req.component,
      stagingDir: this.req.stagingDir,
      limits: this.req.limits,
      archiveBytes: () => this.sink.bytes,
    });
    this.sink = new ArchiveSink(extraction, { url: () => this.url, maxBytes: this.req.maxBytes, onBytes: () => this.emitProgress(false) });
  }

  /** Forgets every byte so far: truncates the `.part`, wipes staging, starts a fresh pipeline. */
  private async restart(): Promise<void> {
    const old = this.sink.extraction;
    old.abort(new LanderError('ERR_RESTART', 'restarting the download from zero'));
    await old.finished.catch(() => undefined); // the restart is the intended outcome
    await rm(this.req.stagingDir, { recursive: true, force: true });
    await this.part.fh.truncate(0);
    this.reused = 0;
    await this.newSink();
  }

  private emitProgress(force: boolean): void {
    const now = performance.now();
    const every = this.req.progressIntervalMs ?? 100;
    if (!force && now - this.lastProgress < every) return;
    const dt = (now - this.lastProgress) / 1000;
    const rate = this.lastProgress === 0 || dt <= 0 ? 0 : (this.downloaded - this.lastProgressDownloaded) / dt;
    this.lastProgress = now;
    this.lastProgressDownloaded = this.downloaded;
    this.ctx.post({
      type: 'progress', jobId: this.req.jobId, bytes: this.sink.bytes, total: this.total,
      downloadedBytes: this.downloaded, rate, extractedBytes: this.sink.extraction.extractedBytes(),
    });
  }

  /**
   * Tries each URL from `from` on in turn until the archive is complete and
   * returns the index of the one that completed it; otherwise throws, naming
   * every URL tried, how it failed and how often it was tried.
   */
  private async download(from = 0): Promise<number> {
    const { req } = this;
    const d = req.download;
    let lastError: Error | undefined;
    let attemptsTotal = 0;
    const tried: { url: string; attempts: number; reason: string }[] = [];
    for (let i = from; i < req.urls.length; i++) {
      const url = req.urls[i]!;
      this.url = url;
      let failures = 0; // consecutive attempts that brought no byte
      let attempts = 0;
      let retryAfter: string | undefined;
      while (attempts < (d.retries + 1) * PROGRESS_ATTEMPTS_FACTOR) {
        if (this.total !== undefined && this.sink.bytes === this.total) return i;
        if (attempts > 0) {
          const delayMs = backoffDelay({ attempt: Math.max(1, failures), initialMs: d.backoffInitialMs, maxMs: d.backoffMaxMs, retryAfter });
          this.log('warn', 'download.retry', { url, attempt: attempts + 1, delayMs, reason: lastError?.message, offset: this.sink.bytes }, 'retrying the download');
          await sleep(delayMs, this.ctx.signal);
        }
        attempts++;
        attemptsTotal++;
        const before = this.sink.bytes;
        const r = await this.attempt(url);
        if (r.kind === 'complete') return i;
        lastError = r.error;
        if (r.kind === 'fatal') throw r.error;
        if (r.kind === 'next-url') {
          lastError = new DownloadError(
            hasCode(r.error, 'ERR_HTTP_STATUS') ? 'ERR_HTTP_STATUS' : (r.error as DownloadError).code ?? 'ERR_DOWNLOAD_FAILED',
            `Cannot download ${url}: ${reasonOf(r.error, url)} (after ${attempts} ${attempts === 1 ? 'attempt' : 'attempts'})`,
            { cause: r.error, data: { url, attempts, offset: this.sink.bytes, ...((r.error as DownloadError).data ?? {}) } },
          );
          break;
        }
        retryAfter = r.retryAfter;
        // A break after progress is not the server failing us; only attempts that bring nothing count.
        failures = this.sink.bytes > before ? 0 : failures + 1;
        if (failures > d.retries) {
          lastError = new DownloadError(
            hasCode(r.error, 'ERR_HTTP_STATUS') ? 'ERR_HTTP_STATUS' : 'ERR_DOWNLOAD_FAILED',
            `Cannot download ${url}: ${reasonOf(r.error, url)} (after ${attempts} attempts)`,
            { cause: r.error, data: { url, attempts, offset: this.sink.bytes } },
          );
          break;
        }
      }
      tried.push({ url, attempts, reason: lastError ? reasonOf(lastError, url) : 'no attempt' });
    }
    if (tried.length > 1) {
      const each = tried.map((t) => `${t.url}: ${t.reason.replace(/ \(after \d+ attempts?\)$/, '')} (after ${t.attempts} ${t.attempts === 1 ? 'attempt' : 'attempts'})`).join('; ');
      throw new DownloadError(hasCode(lastError, 'ERR_HTTP_STATUS') ? 'ERR_HTTP_STATUS' : 'ERR_DOWNLOAD_FAILED', `Cannot download ${req.component} ${req.version} from any of its ${tried.length} URLs: ${each}`, {
        cause: lastError, data: { url: this.url, urls: tried.map((t) => t.url), tried, attempts: attemptsTotal },
      });
    }
    if (lastError instanceof DownloadError) throw lastError;
    throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${this.url}: ${lastError?.message ?? 'no URL to try'} (after ${attemptsTotal} attempts)`, {
      cause: lastError, data: { url: this.url, urls: req.urls, attempts: attemptsTotal },
    });
  }

  private async attempt(url: string): Promise<
    | { kind: 'complete' } | { kind: 'retry'; error: Error; retryAfter?: string } | { kind: 'next-url'; error: Error } | { kind: 'fatal'; error: Error }
  > {
    const { req } = this;
    const offset = this.sink.bytes;
    const sameSource = this.meta?.url === url;
    const ifRange = sameSource ? (this.meta?.etag ?? this.meta?.lastModified) : undefined;
    let res: HttpResponse;
    try {
      res = await httpGet(url, {
        offset, ifRange, signal: this.ctx.signal, ...(req.headers?.[url] ? { headers: req.headers[url] } : {}),
        connectTimeoutMs: req.download.connectTimeoutMs, idleTimeoutMs: req.download.idleTimeoutMs,
      });
    } catch (err) {
      if (this.ctx.signal.aborted) return { kind: 'fatal', error: err as Error };
      if (err instanceof DownloadError) return { kind: 'next-url', error: err }; // redirect loop or bad scheme
      return { kind: 'retry', error: err as Error };
    }
    const status = res.status;
    if (status === 416 && offset > 0) {
      res.body.destroy();
      const cr = parseContentRange(res.headers['content-range']);
      if (cr?.total === offset) { this.total = offset; return { kind: 'complete' }; }
      await this.restartLogged(url, 'the server refused the range (416)');
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
        await this.restartLogged(url, `the server sent a range starting at ${cr?.start}, not ${offset}`);
        return { kind: 'retry', error: new Error(`wrong Content-Range ${res.headers['content-range']}`) };
      }
      this.total = cr.total ?? this.total;
    } else {
      if (offset > 0) await this.restartLogged(url, 'the server ignored the range or the file changed (200)');
      const len = Number(res.headers['content-length']);
      this.total = Number.isSafeInteger(len) ? len : undefined;
    }
    if (req.maxBytes !== undefined && this.total !== undefined && this.total > req.maxBytes) {
      res.body.destroy();
      return { kind: 'fatal', error: new DownloadError('ERR_SIZE_LIMIT', `Cannot download ${url}: it is ${this.total} bytes, over the ${req.maxBytes}-byte limit`, { data: { url, size: this.total, maxBytes: req.maxBytes } }) };
    }
    if (req.disk && this.total !== undefined && !this.spaceChecked) {
      this.spaceChecked = true;
      try {
        const need = spaceNeed({ archiveBytes: this.total, alreadyOnDisk: offset, expansionEstimate: req.disk.expansionEstimate, marginBytes: req.disk.marginBytes });
        await assertSpace(path.dirname(req.stagingDir), need, `${req.component} ${req.version}`);
      } catch (err) {
        res.body.destroy();
        return { kind: 'fatal', error: err as Error };
      }
    }
    if (status === 200 || !sameSource) {
      this.meta = { url, etag: res.headers.etag, lastModified: res.headers['last-modified'], total: this.total };
      await writePartMeta(req.partPath, this.meta);
    }
    const feed = new Feed(this.sink, { fh: this.part.fh, position: this.sink.bytes });
    const start = this.sink.bytes;
    res.body.on('data', (c: Buffer) => { this.downloaded += c.length; });
    try {
      await pipe(res.body, feed);
    } catch (err) {
      await feed.inflight; // the .part must hold exactly the hashed bytes before the next Range
      if (feed.fatal) return { kind: 'fatal', error: feed.fatal };
      if (this.ctx.signal.aborted) return { kind: 'fatal', error: err as Error };
      return { kind: 'retry', error: describeBreak(err as Error, this.sink.bytes - start) };
    }
    if (this.total !== undefined && this.sink.bytes < this.total) {
      return { kind: 'retry', error: new Error(`short body: ${this.sink.bytes} of ${this.total} bytes`) };
    }
    return { kind: 'complete' };
  }

  private async restartLogged(url: string, reason: string): Promise<void> {
    this.log('warn', 'download.restart', { url, reason, discarded: this.sink.bytes }, 'restarting the download from zero');
    this.total = undefined;
    await this.restart();
  }
}

/** An attempt's failure without the `Cannot download <url>: ` its message may already start with. */
function reasonOf(err: Error, url: string): string {
  const prefix = `Cannot download ${url}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

function describeBreak(err: Error, got: number): Error {
  const code = (err as NodeJS.ErrnoException).code;
  return new Error(`the connection broke after ${got} bytes (${code ?? err.message})`, { cause: err });
}
