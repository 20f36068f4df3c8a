/**
 * The one pass: network → `.part` + SHA-256 + size cap → gunzip → tar →
 * staging. Resumes from an earlier `.part` by replaying its bytes through
 * the same pipeline, then asking for the rest with Range/If-Range. A large
 * archive on a server with ranges comes in segments over several
 * connections (`download-attempt.ts`); mirrors and retries are
 * `fetch/mirrors.ts`. Runs in the install worker; `post` carries progress
 * and log events out.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline as pipe } from 'node:stream/promises';
import { AbortError, ArchiveError, DigestMismatchError, LanderError, hasCode } from '../base/errors.ts';
import { diskFullError } from './disk-space.ts';
import { MirrorLedger, reasonOf, tryMirrors } from '../fetch/mirrors.ts';
import { contiguousEnd, mergeRanges, type ByteRange } from '../fetch/byte-ranges.ts';
import type { DoneEvent, InstallRequest, LogEvent, ProgressEvent } from '../../workers/protocol.ts';
import { ArchiveSink, Feed } from './archive-sink.ts';
import { startExtraction } from './extract.ts';
import { openPart, readPartMeta, removePart, writePartMeta, type PartMeta } from './part-file.ts';
import { attemptDownload, type AttemptHost } from './download-attempt.ts';
import { OFF_THREAD_BYTES, PartHasher } from './part-hasher.ts';

export interface PipelineContext {
  signal: AbortSignal;
  post(e: ProgressEvent | LogEvent): void;
}

/** Runs one install request to a verified staging tree; see the module comment. */
export async function runInstallPipeline(req: InstallRequest, ctx: PipelineContext): Promise<DoneEvent> {
  const job = new InstallJob(req, ctx);
  return job.run();
}

/** Failures of a mirror's bytes (not of the network, the disk or the user): the next mirror may serve good ones. */
function isBytesFailure(err: unknown): boolean {
  return err instanceof ArchiveError || err instanceof DigestMismatchError || hasCode(err, 'ERR_SIZE_LIMIT');
}

class InstallJob implements AttemptHost {
  readonly req: InstallRequest;
  readonly ctx: PipelineContext;
  sink!: ArchiveSink;
  part!: Awaited<ReturnType<typeof openPart>>;
  meta: PartMeta | undefined;
  url = '';
  downloaded = 0;
  total: number | undefined;
  spaceChecked = false;
  /** Bytes on disk beyond the fed prefix, from segments (trusted only while the source is the same). */
  covered: ByteRange[] = [];
  /** Set once a server showed it cannot do segments: one stream from then on. */
  singleStream = false;
  linkSpeed: 'slow' | 'fast' | undefined;
  linkRate: number | undefined;
  connections = 0;
  private reused = 0;
  private lastProgress = 0;
  private lastProgressDownloaded = 0;
  private metaWrite: Promise<void> = Promise.resolve();

  constructor(req: InstallRequest, ctx: PipelineContext) {
    this.req = req;
    this.ctx = ctx;
    this.url = req.urls[0] ?? '';
  }

  log(level: LogEvent['level'], event: string, fields: Record<string, unknown>, msg: string): void {
    this.ctx.post({ type: 'log', level, event, fields: { jobId: this.req.jobId, ...fields }, msg });
  }

  async run(): Promise<DoneEvent> {
    const { req } = this;
    let partIsBad = false;
    try {
      this.ctx.signal.throwIfAborted();
      await this.openPartFile();
      await this.newSink();
      await this.replayPart();
      const actual = await this.downloadVerified((bad) => { partIsBad = bad; });
      this.emitProgress(true);
      await this.metaWrite;
      await this.part.fh.close();
      // The .part stays until the caller has committed the tree to the store: a crash before that
      // replays it from disk instead of downloading it again (the caller then removes it).
      return {
        type: 'done', jobId: req.jobId, sha256: actual, bytes: this.sink.bytes, downloadedBytes: this.downloaded,
        reusedBytes: this.reused, extractedBytes: this.sink.extraction.extractedBytes(), files: this.sink.extraction.files,
        inflatedIn: this.sink.offThread ? 'hash-worker' : 'install-worker', partBytes: this.sink.partBytes,
      };
    } catch (e) {
      let err = e;
      if (this.ctx.signal.aborted && !(err instanceof LanderError && !hasCode(err, 'ERR_ABORTED'))) {
        err = new AbortError(`Cannot install ${req.component} ${req.version}: aborted (${String((this.ctx.signal.reason as Error)?.message ?? this.ctx.signal.reason)})`, { cause: e });
      }
      if (hasCode(err, 'ENOSPC') && !hasCode(err, 'ERR_DISK_FULL')) err = diskFullError(path.dirname(req.stagingDir), `${req.component} ${req.version}`, err);
      // Bytes that fail to decompress or parse, or exceed the cap, would fail again: drop them.
      if (isBytesFailure(err)) partIsBad = true;
      await this.cleanup(err as Error, partIsBad);
      throw err;
    }
  }

  /** Opens the `.part`; keeps only the bytes its metadata vouches for. */
  private async openPartFile(): Promise<void> {
    const { req } = this;
    this.meta = await readPartMeta(req.partPath);
    this.part = await openPart(req.partPath);
    const size = this.part.size;
    // A segmented .part has holes: only its recorded ranges (within the file) are trusted.
    const done = this.meta?.done ? mergeRanges(this.meta.done.map((r) => ({ start: r.start, end: Math.min(r.end, size) }))) : size > 0 ? [{ start: 0, end: size }] : [];
    const prefix = contiguousEnd(done, 0);
    const untrusted = !this.meta || (req.maxBytes !== undefined && size > req.maxBytes) || (this.meta.total !== undefined && size > this.meta.total);
    if (size > 0 && untrusted) {
      await this.part.fh.truncate(0); // bytes we cannot vouch for
      this.part.size = 0;
      return;
    }
    this.part.size = prefix;
    this.covered = done.filter((r) => r.end > prefix);
  }

  /** Replays the trusted prefix of an earlier `.part` through a fresh pipeline. */
  private async replayPart(): Promise<void> {
    const offset = this.part.size;
    if (offset === 0) {
      this.log('info', 'download.start', { url: this.url, total: this.meta?.total }, 'downloading');
      return;
    }
    this.total = this.meta!.total;
    this.log('info', 'download.resume', { offset, url: this.meta!.url, segments: this.covered.length }, 'resuming from the partial download');
    try {
      await pipe(createReadStream(this.req.partPath, { start: 0, end: offset - 1, highWaterMark: 1 << 20 }), new Feed(this.sink), { signal: this.ctx.signal });
      this.reused = offset + this.covered.reduce((a, r) => a + r.end - r.start, 0);
    } catch (err) {
      if (!(err instanceof ArchiveError)) throw err;
      this.log('warn', 'download.restart', { reason: err.message }, 'the partial download does not extract; starting over');
      await this.restart();
    }
  }

  /**
   * Downloads through the mirrors until one gives bytes that extract and
   * match the digest; a mirror whose bytes fail (corrupt gzip or tar, other
   * digest, over the size) is skipped and the next is tried from zero.
   * Returns the digest.
   */
  private async downloadVerified(markBad: (bad: boolean) => void): Promise<string> {
    const { req } = this;
    const ledger = new MirrorLedger();
    for (let from = 0; ;) {
      let used = { index: from, attempts: 0 };
      try {
        used = await tryMirrors({
          subject: `${req.component} ${req.version}`, urls: req.urls, from, retry: req.download, signal: this.ctx.signal, ledger,
          attempt: (url) => { used.index = req.urls.indexOf(url); return attemptDownload(this, url); },
          progress: () => this.sink.bytes, isComplete: () => this.total !== undefined && this.sink.bytes === this.total,
          log: (level, event, fields, msg) => this.log(level, event, fields, msg),
        });
        const actual = await this.sink.digest();
        this.ctx.signal.throwIfAborted(); // a stop while the digest finished wins over the result
        if (actual !== req.sha256) {
          throw new DigestMismatchError(`Cannot install ${req.component} ${req.version}: the archive's SHA-256 from ${this.url} is ${actual}, expected ${req.sha256}`, {
            data: { component: req.component, version: req.version, url: this.url, expected: req.sha256, actual, bytes: this.sink.bytes },
          });
        }
        this.sink.endInput();
        await this.sink.extraction.finished;
        return actual;
      } catch (err) {
        if (!isBytesFailure(err) || this.ctx.signal.aborted) throw err;
        const url = this.url;
        ledger.record(url, Math.max(1, used.attempts), err as Error);
        const next = req.urls[used.index + 1];
        if (next === undefined) {
          markBad(true);
          throw ledger.finalError(`${req.component} ${req.version}`, err as Error);
        }
        // The digest comes from the config or the manifest, never from a mirror: a mirror serving other bytes is skipped.
        if (err instanceof DigestMismatchError) {
          this.log('warn', 'download.mirror-mismatch', { url, next, expected: req.sha256, actual: err.data.actual }, 'the archive from this mirror does not match the expected digest; trying the next mirror from zero');
        } else {
          this.log('warn', 'download.mirror-corrupt', { url, next, reason: reasonOf(err as Error, url), code: (err as LanderError).code, expected: req.sha256 }, 'the archive from this mirror does not extract; trying the next mirror from zero');
        }
        this.meta = undefined;
        this.total = undefined;
        await this.restart();
        from = used.index + 1;
      }
    }
  }

  private async cleanup(err: Error, partIsBad: boolean): Promise<void> {
    if (this.sink) {
      this.sink.close();
      this.sink.extraction.abort(err);
      await this.sink.extraction.finished.catch(() => undefined); // already reported as `err`
    }
    await this.metaWrite.catch(() => undefined); // a failed metadata write is not this failure
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
      ...(this.req.flush ? { flush: this.req.flush } : {}),
    });
    this.sink?.close();
    const offThreadBytes = this.req.offThreadBytes ?? OFF_THREAD_BYTES;
    this.sink = new ArchiveSink(extraction, new PartHasher(this.req.partPath, { maxMetaBytes: this.req.limits.maxMetaEntrySize }), {
      url: () => this.url, maxBytes: this.req.maxBytes, onBytes: () => this.emitProgress(false),
      // At the first byte the size is known (the response's, or the .part's being replayed) unless the server did not say.
      offThread: () => (this.total ?? this.part.size) >= offThreadBytes,
    });
  }

  /** Forgets every byte so far: truncates the `.part`, wipes staging, starts a fresh pipeline. */
  async restart(): Promise<void> {
    const old = this.sink.extraction;
    old.abort(new LanderError('ERR_RESTART', 'restarting the download from zero'));
    await old.finished.catch(() => undefined); // the restart is the intended outcome
    await rm(this.req.stagingDir, { recursive: true, force: true });
    await this.metaWrite.catch(() => undefined); // superseded below
    await this.part.fh.truncate(0);
    this.covered = [];
    this.reused = 0;
    await this.newSink();
  }

  /** Writes `.part.json` after any write still in flight (segments finish in any order). */
  saveMeta(meta: PartMeta): Promise<void> {
    this.meta = meta;
    const write = this.metaWrite.then(() => writePartMeta(this.req.partPath, meta));
    this.metaWrite = write.catch(() => undefined); // the caller awaits `write` and sees its error
    return write;
  }

  emitProgress(force: boolean): void {
    const now = performance.now();
    const every = this.req.progressIntervalMs ?? 100;
    if (!force && now - this.lastProgress < every) return;
    const dt = (now - this.lastProgress) / 1000;
    const rate = this.lastProgress === 0 || dt <= 0 ? 0 : (this.downloaded - this.lastProgressDownloaded) / dt;
    this.lastProgress = now;
    this.lastProgressDownloaded = this.downloaded;
    this.ctx.post({
      type: 'progress', jobId: this.req.jobId, bytes: this.sink.bytes, total: this.total, connections: this.connections,
      downloadedBytes: this.downloaded, rate, extractedBytes: this.sink.extraction.extractedBytes(),
    });
  }
}
