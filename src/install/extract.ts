/**
 * A gunzip → tar gate → tar-stream sink that extracts one component into a
 * fresh staging folder. The gate reads every header as GNU tar does and
 * hands on only what it accepts; each entry is classified (a pure decision),
 * checked against the tree so far, then written by the writer for its kind.
 * Limits are enforced while streaming (HOSTILE-INPUT.md).
 */
import type { ErrorCode } from '../base/error-codes.ts';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import tar, { type Header } from 'tar-stream';
import { ArchiveError, LanderError, StoreError } from '../base/errors.ts';
import type { EntryType, ExtractLimits, FileRecord } from '../../workers/protocol.ts';
import { classifyEntry, type EntryDecision } from './entry-classifier.ts';
import { collisionKey, displayEntryName, parentPaths } from './entry-path.ts';
import { drain, writeDirectory, writeFile, writeHardlink, writeSymlink, type Body } from './entry-writers.ts';
import { readAhead, type ReadAhead } from './read-ahead.ts';
import { DEFAULT_FLUSH, FlushBehind, flushTree, type FlushMode } from './flush.ts';
import { LinkTable } from './link-table.ts';
import { GateRefusal, TarGate } from './tar-gate.ts';

export interface ExtractOptions {
  /** Component name, for messages. */
  component: string;
  /** Created here with mode 0700; must not exist. */
  stagingDir: string;
  limits: ExtractLimits;
  /** Compressed bytes read so far, for the expansion ratio. */
  archiveBytes(): number;
  /** Write buffer per file. @default 1 MiB */
  highWaterMark?: number;
  /** How the tree is made durable before `finished` resolves; see flush.ts. @default DEFAULT_FLUSH */
  flush?: FlushMode;
}

/** A tar stream inflated elsewhere, with the archive bytes behind it and each file body's digest (by header offset). */
export interface TarSource extends Readable {
  consumed(): number;
  bodyDigest(offset: number): Promise<string>;
}

export interface Extraction {
  /** Write the `.tar.gz` bytes here (a gunzip stream, with back-pressure); not with `inflateFrom`. */
  readonly input: Gunzip;
  /**
   * Takes the tar stream from `src` (inflated elsewhere: the hash worker) instead of `input`;
   * `src.consumed()` is the archive bytes behind it, for the expansion ratio. Before any input.
   */
  inflateFrom(src: TarSource): void;
  /** Resolves after the tar end, the last file written and the tree flushed; rejects with an ArchiveError or I/O error. */
  readonly finished: Promise<void>;
  readonly files: FileRecord[];
  /** File bytes written so far. */
  extractedBytes(): number;
  /** Stops extraction (idempotent); `finished` rejects with `err`. */
  abort(err: Error): void;
}

const RATIO_GRACE = 1 << 20;
/** Inflated bytes gunzip may hold ahead of the tar side (4 of its 1 MiB chunks). */
const READ_AHEAD_BYTES = 4 << 20;
/** The same queue for a tar stream inflated in the hash worker. */
const REMOTE_AHEAD_BYTES = 1 << 20;

/** Creates the staging folder and starts an extraction into it. */
export async function startExtraction(opts: ExtractOptions): Promise<Extraction> {
  await mkdir(path.dirname(opts.stagingDir), { recursive: true });
  await mkdir(opts.stagingDir, { mode: 0o700 }); // EEXIST when it pre-exists: a stale tree is never reused
  return new TreeWriter(opts).start();
}

type Decided<K extends EntryDecision['kind']> = Extract<EntryDecision, { kind: K }>;

class TreeWriter {
  private readonly files: FileRecord[] = [];
  private readonly kinds = new Map<string, EntryType>(); // normalised path → what is there
  private readonly keys = new Map<string, string>(); // collision key → normalised path
  private readonly dirs = new Set<string>(); // created folders, for final modes
  private readonly fileByPath = new Map<string, FileRecord>();
  private readonly links: LinkTable;
  private readonly gate: TarGate;
  /** Entries whose write is still in flight: tar-stream's `finish` does not wait for them. */
  private readonly pending = new Set<Promise<void>>();
  private entries = 0;
  private written = 0;
  private declared = 0;
  private tarBytes = 0;
  // 1 MiB output chunks: gunzip is the slowest stage, and every chunk is a round trip between
  // the thread pool and this thread (bench/: 256 KiB chunks made a 256 MB install ~14% slower).
  private readonly gunzip = createGunzip({ chunkSize: 1024 * 1024 });
  private readonly tarx = tar.extract();
  private failure: Error | undefined;
  private ahead: ReadAhead | undefined;
  private source: Readable | undefined;
  /** Set when the tar stream comes from the hash worker: it hashed each file body already. */
  private digests: TarSource | undefined;
  /** Archive bytes behind the tar stream so far (the expansion ratio's denominator). */
  private archiveBytes: () => number;
  /** Files closed and being fsynced in the background (flush `behind`). */
  private readonly behind: FlushBehind | undefined;
  private readonly o: ExtractOptions;
  private readonly flush: FlushMode;

  constructor(o: ExtractOptions) {
    this.o = o;
    this.archiveBytes = o.archiveBytes;
    this.flush = o.flush ?? DEFAULT_FLUSH;
    this.behind = this.flush === 'behind' ? new FlushBehind() : undefined;
    this.links = new LinkTable({ maxPathLength: o.limits.maxPathLength });
    this.gate = new TarGate(o.limits.maxMetaEntrySize);
  }

  start(): Extraction {
    const { gunzip, tarx, gate } = this;
    const fail = (err: unknown) => this.fail(err instanceof GateRefusal ? this.refusal(err) : (err as Error));
    const gateStream = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        try {
          for (const b of gate.feed(chunk)) this.push(b);
          cb();
        } catch (err) {
          fail(err);
          cb();
        }
      },
      flush(cb) {
        try {
          gate.end();
        } catch (err) {
          fail(err);
        }
        cb();
      },
    });
    // The tar stream's source is attached on first use: this thread's gunzip (`input`), or a stream inflated elsewhere.
    const attach = (src: Readable, archiveBytes: () => number, aheadBytes: number) => {
      if (this.source) {
        if (this.source !== src) throw new Error('the extraction already reads its tar stream from elsewhere');
        return;
      }
      this.source = src;
      this.archiveBytes = archiveBytes;
      src.on('error', (err) => this.fail(this.wrapStreamError(err, 'gzip')));
      src.on('data', (chunk: Buffer) => this.countTar(chunk.length));
      this.ahead = readAhead(src, gateStream, { maxBytes: aheadBytes });
    };
    const finished = new Promise<void>((resolve, reject) => {
      tarx.on('error', (err: Error) => this.fail(this.wrapStreamError(err, 'tar')));
      let finishedParsing = false;
      tarx.on('finish', () => (finishedParsing = true));
      // Destroying an entry's stream (a failed write, e.g. ENOSPC) closes the whole extractor at once,
      // before the entry's rejection reaches fail(): let that land first, and never take a close
      // without a finished parse for success, or the feeder would wait on a dead gunzip forever.
      tarx.on('close', () => setImmediate(async () => {
        if (this.failure) return reject(this.failure);
        // tar-stream finishes as soon as it has handed out the last body, which without end-of-archive
        // blocks is before that file is on disk (issue 13: the last file was dropped): wait for every write.
        while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
        if (this.failure) return reject(this.failure);
        if (!finishedParsing) {
          const err = new ArchiveError('ERR_ARCHIVE_CORRUPT', `Cannot extract ${this.o.component}: the tar stream stopped before its end`, { data: { component: this.o.component } });
          this.fail(err);
          return reject(err);
        }
        this.complete().then(resolve, reject);
      }));
      gateStream.pipe(tarx as unknown as NodeJS.WritableStream);
      tarx.on('entry', (header: Header, stream: Body, next: (err?: Error | null) => void) => {
        // An abort (a restart from zero, a superseded job) destroys the extractor and with it this entry's
        // stream, maybe while entry() awaits a check and has no listener yet: without one, that 'error'
        // would crash the worker. The failure itself is already recorded by fail(); readers add their own.
        stream.on('error', () => undefined);
        const p: Promise<void> = this.entry(header, stream).then(() => next(), (err: Error) => {
          this.fail(err);
          stream.destroy();
          next(err);
        }).finally(() => this.pending.delete(p));
        this.pending.add(p);
      });
    });
    finished.catch(() => {}); // the caller awaits it; this keeps an early failure from being "unhandled" meanwhile
    const o = this.o;
    return {
      get input() {
        attach(gunzip, o.archiveBytes, READ_AHEAD_BYTES);
        return gunzip;
      },
      inflateFrom: (src) => {
        // The worker's credit window already lets gunzip run ahead: one chunk queued here is enough.
        attach(src, () => src.consumed(), REMOTE_AHEAD_BYTES);
        this.digests = src;
      },
      finished,
      files: this.files,
      extractedBytes: () => this.written,
      abort: (err) => this.fail(err),
    };
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.ahead?.stop();
    this.gunzip.destroy();
    if (this.source !== this.gunzip) this.source?.destroy();
    this.tarx.destroy(err);
  }

  private error(code: ErrorCode, rawEntry: string, what: string, data: Record<string, unknown> = {}, cause?: unknown): ArchiveError {
    const entry = displayEntryName(rawEntry);
    return new ArchiveError(code, `Cannot extract ${this.o.component}: entry ${JSON.stringify(entry)} ${what}`, {
      cause,
      data: { component: this.o.component, entry, ...data },
    });
  }

  private refusal(r: GateRefusal): ArchiveError {
    if (r.entry !== undefined) return this.error(r.code, r.entry, r.reason, r.data);
    return new ArchiveError(r.code, `Cannot extract ${this.o.component}: the archive ${r.reason}`, { data: { component: this.o.component, ...r.data } });
  }

  private wrapStreamError(err: Error, layer: 'gzip' | 'tar'): Error {
    if (err instanceof LanderError) return err;
    const last = this.gate.last === undefined ? undefined : displayEntryName(this.gate.last);
    const at = last === undefined ? '' : ` at or after entry ${JSON.stringify(last)}`;
    return new ArchiveError('ERR_ARCHIVE_CORRUPT', `Cannot extract ${this.o.component}: the ${layer} stream is corrupt or truncated${at} (${err.message})`, {
      cause: err,
      data: { component: this.o.component, layer, ...(last !== undefined ? { entry: last } : {}) },
    });
  }

  /** Counts decompressed bytes: the gzip-bomb guard works on what gunzip emits, before tar parses it. */
  private countTar(n: number): void {
    this.tarBytes += n;
    const { maxExpansionRatio } = this.o.limits;
    const ratio = this.tarBytes / Math.max(this.archiveBytes(), RATIO_GRACE);
    if (ratio > maxExpansionRatio) {
      const last = this.gate.last === undefined ? undefined : displayEntryName(this.gate.last);
      const at = last === undefined ? '' : ` (at entry ${JSON.stringify(last)})`;
      this.fail(new ArchiveError('ERR_ARCHIVE_LIMIT', `Cannot extract ${this.o.component}: the archive expands ${ratio.toFixed(1)} times, over limits.maxExpansionRatio (${maxExpansionRatio})${at}; a gzip bomb?`, {
        data: { component: this.o.component, limit: 'maxExpansionRatio', value: ratio, max: maxExpansionRatio, tarBytes: this.tarBytes, archiveBytes: this.archiveBytes(), ...(last !== undefined ? { entry: last } : {}) },
      }));
    }
  }

  private async entry(header: Header, stream: Body): Promise<void> {
    // The gate's reading is the one of record; tar-stream must have read the same header the same way.
    const g = this.gate.take(stream.offset);
    if (!g || g.name !== header.name || g.size !== (header.size ?? 0)) {
      throw this.error('ERR_ARCHIVE_CORRUPT', g?.name ?? header.name, `is read differently by tar-stream and by lander's header reader (at tar offset ${stream.offset}); refused as ambiguous`);
    }
    const name = g.name;
    const L = this.o.limits;
    if (++this.entries > L.maxEntries) throw this.error('ERR_ARCHIVE_LIMIT', name, `is entry ${this.entries}, over limits.maxEntries (${L.maxEntries})`, { limit: 'maxEntries', value: this.entries, max: L.maxEntries });
    const d = classifyEntry(g, L);
    if (d.kind === 'refuse') throw this.error(d.code, name, d.reason, d.data);
    if (d.kind === 'root') return drain(stream);
    const rel = d.path;
    for (const p of parentPaths(rel)) {
      if (this.links.has(p)) throw this.error('ERR_ARCHIVE_LINK', name, `would be written through the symlink "${p}"`, { link: p });
      const k = this.kinds.get(p);
      if (k !== undefined && k !== 'directory') throw this.error('ERR_ARCHIVE_PATH', name, `has the non-folder "${p}" as a parent`);
    }
    if (this.kinds.get(rel) === 'directory' && d.kind === 'directory') return drain(stream); // a folder listed twice, or after its files
    this.claim(rel, name);
    for (const p of parentPaths(rel)) if (!this.kinds.has(p)) this.claim(p, name);
    if (d.kind === 'file' && this.declared + d.size > L.maxExtractedBytes) {
      throw this.error('ERR_ARCHIVE_LIMIT', name, `would take the extracted size to ${this.declared + d.size} bytes, over limits.maxExtractedBytes (${L.maxExtractedBytes})`, { limit: 'maxExtractedBytes', value: this.declared + d.size, max: L.maxExtractedBytes });
    }
    const abs = path.join(this.o.stagingDir, rel);
    let record: FileRecord;
    try {
      // Inside the try: a parent that appeared behind our back fails here with EEXIST, reported as unsafe (#21).
      await this.makeParents(rel);
      switch (d.kind) {
        case 'directory': record = await this.directory(d, abs, stream); break;
        case 'symlink': record = await this.symlink(d, abs, stream, name); break;
        case 'link': record = await this.hardlink(d, abs, stream); break;
        case 'file': record = await this.file(d, abs, stream, name, g.offset); break;
      }
    } catch (err) {
      if (err instanceof LanderError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      // EEXIST/ELOOP mean something appeared in staging behind our back (HOSTILE-INPUT #21).
      if (code === 'EEXIST' || code === 'ELOOP') throw this.error('ERR_ARCHIVE_PATH', name, `could not be created safely (${code})`, {}, err);
      throw new StoreError('ERR_EXTRACT_WRITE', `Cannot extract ${this.o.component}: writing ${JSON.stringify(rel)} failed: ${(err as Error).message}`, { cause: err, data: { component: this.o.component, entry: name } });
    }
    this.files.push(record);
  }

  private async directory(d: Decided<'directory'>, abs: string, body: Body): Promise<FileRecord> {
    await drain(body);
    await writeDirectory(abs);
    this.dirs.add(d.path);
    this.kinds.set(d.path, 'directory');
    return { path: d.path, type: 'directory', size: 0, mode: 0o755 };
  }

  private async symlink(d: Decided<'symlink'>, abs: string, body: Body, name: string): Promise<FileRecord> {
    await drain(body);
    const reason = this.links.add(d.path, d.linkname);
    if (reason) throw this.error('ERR_ARCHIVE_LINK', name, reason, { linkname: d.linkname });
    await writeSymlink(abs, d.linkname);
    this.kinds.set(d.path, 'symlink');
    return { path: d.path, type: 'symlink', size: 0, mode: 0o777, linkname: d.linkname };
  }

  private async hardlink(d: Decided<'link'>, abs: string, body: Body): Promise<FileRecord> {
    await drain(body);
    const target = this.fileByPath.get(d.target);
    if (!target) throw this.error('ERR_ARCHIVE_LINK', d.path, `is a hard link to ${JSON.stringify(d.target)}, which is not a file extracted earlier from this archive`, { linkname: d.target });
    await writeHardlink(abs, path.join(this.o.stagingDir, d.target));
    this.kinds.set(d.path, 'link');
    return { path: d.path, type: 'link', linkname: d.target, size: target.size, mode: target.mode, ...(target.sha256 ? { sha256: target.sha256 } : {}) };
  }

  private async file(d: Decided<'file'>, abs: string, body: Body, name: string, offset: number): Promise<FileRecord> {
    this.declared += d.size;
    this.kinds.set(d.path, 'file');
    const digests = this.digests;
    // Asked for now, so a digest that came before its body is taken, and one that never comes fails the entry.
    const later = digests?.bodyDigest(offset);
    later?.catch(() => undefined);
    const written = await writeFile(body, {
      abs, mode: d.mode, size: d.size, highWaterMark: this.o.highWaterMark ?? 1 << 20, sync: this.flush === 'close',
      onBytes: (n) => { this.written += n; },
      corrupt: (reason) => this.error('ERR_ARCHIVE_CORRUPT', name, reason),
      hash: !digests,
    });
    const { size } = written;
    const sha256 = later ? await later : written.sha256!;
    const record: FileRecord = { path: d.path, type: 'file', size, mode: d.mode, sha256 };
    this.fileByPath.set(d.path, record);
    this.behind?.add(abs);
    return record;
  }

  /** Reserves a path and its case/Unicode-folded key (HOSTILE-INPUT #11). */
  private claim(rel: string, entryName: string): void {
    const key = collisionKey(rel);
    const prev = this.keys.get(key);
    if (prev !== undefined) {
      throw this.error('ERR_ARCHIVE_PATH', entryName, prev === rel ? 'appears twice in the archive' : `collides with the earlier entry "${prev}" on a case-insensitive or normalising file system`, { collidesWith: prev });
    }
    this.keys.set(key, rel);
  }

  private async makeParents(rel: string): Promise<void> {
    for (const p of parentPaths(rel)) {
      if (this.dirs.has(p)) continue;
      // Not recursive: each level is created by us, so nothing foreign can sit on the way.
      await writeDirectory(path.join(this.o.stagingDir, p));
      this.dirs.add(p);
      this.kinds.set(p, 'directory');
      this.files.push({ path: p, type: 'directory', size: 0, mode: 0o755 });
    }
  }

  /** Folders were made 0700 so extraction could write into them; now they get their final 0755; then the flush. */
  private async complete(): Promise<void> {
    const dirs = [...this.dirs].map((d) => path.join(this.o.stagingDir, d));
    for (const d of dirs) await chmod(d, 0o755);
    await this.behind?.done();
    const files = this.flush === 'batch' || this.flush === 'syncfs' ? [...this.fileByPath.keys()].map((f) => path.join(this.o.stagingDir, f)) : [];
    await flushTree(this.flush, this.o.stagingDir, files, dirs);
  }
}
