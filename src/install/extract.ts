/**
 * A gunzip + tar-stream sink that extracts one component into a fresh
 * staging folder. Every entry is checked before anything is written for it
 * (HOSTILE-INPUT.md); limits are enforced while streaming.
 */
import type { ErrorCode } from '../base/error-codes.ts';
import { createHash } from 'node:crypto';
import { constants as fsc, createWriteStream } from 'node:fs';
import { chmod, link, mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';
import { MetaHeaderWatch } from './meta-watch.ts';
import tar, { type ExtractEvents, type Header } from 'tar-stream';
import { ArchiveError, LanderError, StoreError } from '../base/errors.ts';
import type { EntryType, ExtractLimits, FileRecord } from '../../workers/protocol.ts';
import { checkEntryPath, collisionKey, displayEntryName, parentPaths } from './entry-path.ts';
import { LinkTable } from './link-table.ts';

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
}

export interface Extraction {
  /** Write the `.tar.gz` bytes here (a gunzip stream, with back-pressure). */
  readonly input: Gunzip;
  /** Resolves after the tar end and the last file is written; rejects with an ArchiveError or I/O error. */
  readonly finished: Promise<void>;
  readonly files: FileRecord[];
  /** File bytes written so far. */
  extractedBytes(): number;
  /** Stops extraction (idempotent); `finished` rejects with `err`. */
  abort(err: Error): void;
}

const FILE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
const RATIO_GRACE = 1 << 20;

/** Creates the staging folder and starts an extraction into it. */
export async function startExtraction(opts: ExtractOptions): Promise<Extraction> {
  await mkdir(path.dirname(opts.stagingDir), { recursive: true });
  await mkdir(opts.stagingDir, { mode: 0o700 }); // EEXIST when it pre-exists: a stale tree is never reused
  const x = new TreeWriter(opts);
  return x.start();
}

type Kind = EntryType;
/** tar-stream's entry body; `offset` is where its header starts in the tar stream. */
type Source = ExtractEvents['entry'][1];

class TreeWriter {
  private readonly files: FileRecord[] = [];
  private readonly kinds = new Map<string, Kind>(); // normalised path → what is there
  private readonly keys = new Map<string, string>(); // collision key → normalised path
  private readonly dirs = new Set<string>(); // created folders, for final modes
  private readonly links: LinkTable;
  private entries = 0;
  private written = 0;
  private declared = 0;
  private tarBytes = 0;
  private nextHeader = 0; // where the next header starts if no long headers come between
  // 1 MiB output chunks: gunzip is the slowest stage, and every chunk is a round trip between
  // the thread pool and this thread (bench/: 256 KiB chunks made a 256 MB install ~14% slower).
  private readonly gunzip = createGunzip({ chunkSize: 1024 * 1024 });
  private readonly tarx = tar.extract();
  private failure: Error | undefined;
  /** The entry being extracted, so stream-level failures (bomb, corrupt tar) can still name one. */
  private lastEntry: string | undefined;

  private readonly o: ExtractOptions;

  constructor(o: ExtractOptions) {
    this.o = o;
    this.links = new LinkTable({ maxPathLength: o.limits.maxPathLength });
  }

  start(): Extraction {
    const { gunzip, tarx } = this;
    const finished = new Promise<void>((resolve, reject) => {
      gunzip.on('error', (err) => this.fail(this.wrapStreamError(err, 'gzip')));
      tarx.on('error', (err: Error) => this.fail(this.wrapStreamError(err, 'tar')));
      let finishedParsing = false;
      tarx.on('finish', () => (finishedParsing = true));
      // Destroying an entry's stream (a failed write, e.g. ENOSPC) closes the whole extractor at once,
      // before the entry's rejection reaches fail(): let that land first, and never take a close
      // without a finished parse for success, or the feeder would wait on a dead gunzip forever.
      tarx.on('close', () => setImmediate(() => {
        if (this.failure) return reject(this.failure);
        if (!finishedParsing) {
          const err = new ArchiveError('ERR_ARCHIVE_CORRUPT', `Cannot extract ${this.o.component}: the tar stream stopped before its end`, { data: { component: this.o.component } });
          this.fail(err);
          return reject(err);
        }
        this.applyDirModes().then(resolve, reject);
      }));
      // Before tar-stream sees the chunk (this listener is added before the pipe): an over-limit pax or
      // long-name header is refused on its header block, before tar-stream buffers its body.
      const metaWatch = new MetaHeaderWatch(this.o.limits.maxMetaEntrySize);
      gunzip.on('data', (chunk: Buffer) => {
        this.countTar(chunk.length);
        const over = metaWatch.feed(chunk);
        if (over) {
          const entry = displayEntryName(over.name);
          const after = this.lastEntry === undefined ? 'at the start' : `after entry ${JSON.stringify(displayEntryName(this.lastEntry))}`;
          this.fail(new ArchiveError('ERR_ARCHIVE_LIMIT', `Cannot extract ${this.o.component}: entry ${JSON.stringify(entry)} (${over.type === 'x' || over.type === 'g' ? 'a pax header' : 'a GNU long name'} ${after}) makes ${over.bytes} bytes of pax/long-name headers, over limits.maxMetaEntrySize (${this.o.limits.maxMetaEntrySize}); refused before reading it`, {
            data: { component: this.o.component, entry, limit: 'maxMetaEntrySize', value: over.bytes, max: this.o.limits.maxMetaEntrySize },
          }));
        }
      });
      gunzip.pipe(tarx as unknown as NodeJS.WritableStream);
      tarx.on('entry', (header: Header, stream: Source, next: (err?: Error | null) => void) => {
        // An abort (a restart from zero, a superseded job) destroys the extractor and with it this entry's
        // stream, maybe while entry() awaits a check and has no listener yet: without one, that 'error'
        // would crash the worker. The failure itself is already recorded by fail(); readers add their own.
        stream.on('error', () => undefined);
        this.entry(header, stream).then(() => next(), (err: Error) => {
          this.fail(err);
          stream.destroy();
          next(err);
        });
      });
    });
    finished.catch(() => {}); // the caller awaits it; this keeps an early failure from being "unhandled" meanwhile
    return {
      input: gunzip,
      finished,
      files: this.files,
      extractedBytes: () => this.written,
      abort: (err) => this.fail(err),
    };
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.gunzip.unpipe(this.tarx as unknown as NodeJS.WritableStream);
    this.gunzip.destroy();
    this.tarx.destroy(err);
  }

  private error(code: ErrorCode, rawEntry: string, what: string, data: Record<string, unknown> = {}, cause?: unknown): ArchiveError {
    const entry = displayEntryName(rawEntry);
    return new ArchiveError(code, `Cannot extract ${this.o.component}: entry ${JSON.stringify(entry)} ${what}`, {
      cause,
      data: { component: this.o.component, entry, ...data },
    });
  }

  private wrapStreamError(err: Error, layer: 'gzip' | 'tar'): Error {
    if (err instanceof LanderError) return err;
    if (/Header exceeds max size/.test(err.message)) {
      return new ArchiveError('ERR_ARCHIVE_LIMIT', `Cannot extract ${this.o.component}: a pax or GNU long-name header is over 4 MiB`, { cause: err, data: { component: this.o.component } });
    }
    const last = this.lastEntry === undefined ? undefined : displayEntryName(this.lastEntry);
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
    const ratio = this.tarBytes / Math.max(this.o.archiveBytes(), RATIO_GRACE);
    if (ratio > maxExpansionRatio) {
      const last = this.lastEntry === undefined ? undefined : displayEntryName(this.lastEntry);
      const at = last === undefined ? '' : ` (at entry ${JSON.stringify(last)})`;
      this.fail(new ArchiveError('ERR_ARCHIVE_LIMIT', `Cannot extract ${this.o.component}: the archive expands ${ratio.toFixed(1)} times, over limits.maxExpansionRatio (${maxExpansionRatio})${at}; a gzip bomb?`, {
        data: { component: this.o.component, limit: 'maxExpansionRatio', value: ratio, max: maxExpansionRatio, tarBytes: this.tarBytes, archiveBytes: this.o.archiveBytes(), ...(last !== undefined ? { entry: last } : {}) },
      }));
    }
  }

  private async entry(header: Header, stream: Source): Promise<void> {
    const name = header.name;
    this.lastEntry = name;
    const L = this.o.limits;
    if (++this.entries > L.maxEntries) throw this.error('ERR_ARCHIVE_LIMIT', name, `is entry ${this.entries}, over limits.maxEntries (${L.maxEntries})`, { limit: 'maxEntries', value: this.entries, max: L.maxEntries });
    // tar-stream reads pax and GNU long-name headers whole (up to its own 4 MiB cap) and never
    // shows them as entries; the gap between where this header starts and where the previous
    // entry ended is exactly their size, so the limit is checked here, after the fact.
    const meta = stream.offset - this.nextHeader;
    // The gap is what tar-stream read for this entry's pax/long-name headers, header blocks and padding
    // included: that is exactly what limits.maxMetaEntrySize bounds (no slack, so the limit is exact).
    if (meta > L.maxMetaEntrySize) {
      throw this.error('ERR_ARCHIVE_LIMIT', name, `has pax/long-name headers of ${meta} bytes, over limits.maxMetaEntrySize (${L.maxMetaEntrySize})`, { limit: 'maxMetaEntrySize', value: meta, max: L.maxMetaEntrySize });
    }
    const size = header.size ?? 0;
    this.nextHeader = stream.offset + 512 + (header.type === 'directory' || size === 0 ? 0 : size + ((512 - (size % 512)) % 512));

    const type: Kind | undefined = header.type === 'file' || header.type === 'contiguous-file' ? 'file'
      : header.type === 'directory' || header.type === 'symlink' || header.type === 'link' ? header.type : undefined;
    if (!type) throw this.error('ERR_ARCHIVE_ENTRY_TYPE', name, `is a ${header.type ?? 'unknown'} entry; only files, folders and links are extracted`, { type: header.type });

    const checked = checkEntryPath(name, L);
    if (!checked.ok) {
      const lim = checked.limit;
      throw this.error(lim ? 'ERR_ARCHIVE_LIMIT' : 'ERR_ARCHIVE_PATH', name, checked.reason, lim ? { limit: lim.name, value: lim.value, max: lim.max } : {});
    }
    const rel = checked.path;
    if (rel === '') {
      if (type !== 'directory') throw this.error('ERR_ARCHIVE_PATH', name, 'names the root folder but is not a folder');
      return drain(stream);
    }
    for (const p of parentPaths(rel)) {
      if (this.links.has(p)) throw this.error('ERR_ARCHIVE_LINK', name, `would be written through the symlink "${p}"`, { link: p });
      const k = this.kinds.get(p);
      if (k !== undefined && k !== 'directory') throw this.error('ERR_ARCHIVE_PATH', name, `has the non-folder "${p}" as a parent`);
    }
    const existing = this.kinds.get(rel);
    if (existing === 'directory' && type === 'directory') return drain(stream); // a folder listed twice, or after its files
    this.claim(rel, name);
    for (const p of parentPaths(rel)) if (!this.kinds.has(p)) this.claim(p, name);

    if (type === 'file' && this.declared + size > L.maxExtractedBytes) {
      throw this.error('ERR_ARCHIVE_LIMIT', name, `would take the extracted size to ${this.declared + size} bytes, over limits.maxExtractedBytes (${L.maxExtractedBytes})`, { limit: 'maxExtractedBytes', value: this.declared + size, max: L.maxExtractedBytes });
    }
    const abs = path.join(this.o.stagingDir, rel);
    const mode = type === 'directory' ? 0o755 : type === 'file' ? ((header.mode ?? 0) & 0o111 ? 0o755 : 0o644) : 0o777;
    const record: FileRecord = { path: rel, type, size: 0, mode };
    try {
      // Inside the try: a parent that appeared behind our back fails here with EEXIST, reported as unsafe (#21).
      await this.makeParents(rel);
      switch (type) {
        case 'directory':
          await drain(stream);
          await mkdir(abs, { mode: 0o700 });
          this.dirs.add(rel);
          this.kinds.set(rel, 'directory');
          break;
        case 'symlink': {
          await drain(stream);
          const reason = this.links.add(rel, header.linkname ?? '');
          if (reason) throw this.error('ERR_ARCHIVE_LINK', name, reason, { linkname: header.linkname });
          await symlink(header.linkname!, abs);
          this.kinds.set(rel, 'symlink');
          record.linkname = header.linkname!;
          break;
        }
        case 'link': {
          await drain(stream);
          const target = checkEntryPath(header.linkname ?? '', L);
          const targetRec = target.ok ? this.fileByPath.get(target.path) : undefined;
          if (!target.ok || !targetRec) {
            throw this.error('ERR_ARCHIVE_LINK', name, `is a hard link to ${JSON.stringify(header.linkname)}, which is not a file extracted earlier from this archive`, { linkname: header.linkname });
          }
          await link(path.join(this.o.stagingDir, target.path), abs);
          this.kinds.set(rel, 'link');
          Object.assign(record, { linkname: target.path, size: targetRec.size, mode: targetRec.mode, ...(targetRec.sha256 ? { sha256: targetRec.sha256 } : {}) });
          break;
        }
        case 'file':
          this.declared += size;
          this.kinds.set(rel, 'file');
          Object.assign(record, await this.writeFile(stream, abs, mode, size, name));
          this.fileByPath.set(rel, record);
          break;
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

  private readonly fileByPath = new Map<string, FileRecord>();

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
      await mkdir(path.join(this.o.stagingDir, p), { mode: 0o700 });
      this.dirs.add(p);
      this.kinds.set(p, 'directory');
      this.files.push({ path: p, type: 'directory', size: 0, mode: 0o755 });
    }
  }

  /**
   * Streams one body into a new file, with back-pressure; O_EXCL|O_NOFOLLOW so nothing is written through a link.
   * Hashes the body on its way to disk, so `lander verify` has a per-file digest without a second read.
   */
  private writeFile(stream: Source, abs: string, mode: number, size: number, name: string): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    return new Promise<number>((resolve, reject) => {
      const ws = createWriteStream(abs, { flags: FILE_FLAGS as unknown as string /* numeric flags are accepted at runtime; @types/node says string */, mode, highWaterMark: this.o.highWaterMark ?? 1 << 20 });
      let n = 0;
      let failed = false;
      const bail = (err: Error) => {
        if (failed) return;
        failed = true;
        ws.destroy();
        stream.destroy();
        reject(err);
      };
      stream.on('data', (data) => {
        const chunk = data as Buffer;
        n += chunk.length;
        this.written += chunk.length;
        if (n > size) return bail(this.error('ERR_ARCHIVE_CORRUPT', name, `has a body longer than its header's ${size} bytes`));
        hash.update(chunk);
        if (!ws.write(chunk)) {
          stream.pause();
          ws.once('drain', () => stream.resume());
        }
      });
      stream.on('end', () => ws.end());
      stream.on('error', (err: Error) => bail(err));
      ws.on('error', bail);
      ws.on('finish', () => {
        if (failed) return;
        if (n !== size) return bail(this.error('ERR_ARCHIVE_CORRUPT', name, `has ${n} bytes, not the ${size} its header says`));
        resolve(n);
      });
    }).then(async (n) => {
      // umask may have narrowed the mode; the store relies on the clamped one.
      if ((mode & umask) !== 0) await chmod(abs, mode);
      return { size: n, sha256: hash.digest('hex') };
    });
  }

  /** Folders were made 0700 so extraction could write into them; now they get their final 0755. */
  private async applyDirModes(): Promise<void> {
    for (const d of this.dirs) await chmod(path.join(this.o.stagingDir, d), 0o755);
  }
}

const umask = readUmask();
function readUmask(): number {
  try {
    return process.umask();
  } catch {
    // Deno refuses process.umask() without a blanket --allow-sys (no "umask" descriptor exists):
    // treat every bit as possibly masked, so each file gets its explicit chmod. Correct, one syscall more.
    return 0o777;
  }
}

function drain(stream: Source): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.resume();
  });
}
