/**
 * Where archive bytes go, once each: byte count and size cap, then the
 * extraction's gunzip input, with back-pressure; the SHA-256 is taken by a
 * hash worker reading the `.part` back (`part-hasher.ts`), told how far the
 * file holds fed bytes through `onDisk`. When `offThread` says so at the
 * first byte (a large archive), that worker also inflates what it reads and
 * the extraction takes its tar stream: bytes pushed here are then only
 * counted and capped, and the download no longer waits for the extraction
 * (the `.part` on disk is the buffer between them). `Feed` is the Writable
 * a source (the `.part` replay or a response body) is piped into; it also
 * appends to the `.part` file when given one.
 */
import { Writable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import { DownloadError } from '../base/errors.ts';
import type { Extraction } from './extract.ts';
import { writeAllAt } from '../fetch/write-all.ts';
import type { PartHasher } from './part-hasher.ts';

export interface SinkOptions {
  url?: () => string;
  maxBytes?: number;
  onBytes?: (n: number) => void;
  /** Asked once, at the first byte: inflate in the hash worker? */
  offThread?: () => boolean;
}

export class ArchiveSink {
  /** Archive bytes through the hash so far. */
  bytes = 0;
  private failure: Error | undefined;
  private readonly waiters = new Set<(err: Error) => void>();

  readonly extraction: Extraction;
  private readonly opts: SinkOptions;
  private readonly hasher: PartHasher;
  /** Undecided until the first byte; then whether gunzip runs in the hash worker. */
  private remote: boolean | undefined;

  constructor(extraction: Extraction, hasher: PartHasher, opts: SinkOptions) {
    this.extraction = extraction;
    this.hasher = hasher;
    this.opts = opts;
    // One reaction on the failure, not one per wait: a 2 GB download waits on drain thousands of times.
    extraction.finished.catch((err: Error) => {
      this.failure = err;
      hasher.failRing(err);
      for (const w of this.waiters) w(err);
      this.waiters.clear();
    });
  }

  /** Whether gunzip runs in the hash worker (decided at the first byte). */
  get offThread(): boolean {
    return this.remote === true;
  }

  /**
   * True when bytes on disk need not be read to be fed: the hash worker reads the `.part` itself
   * (decides, as the first byte would). Then `advance` counts them.
   */
  readsPart(): boolean {
    return this.decide();
  }

  /** Counts `n` bytes that are on the `.part` already, unread; only when `readsPart()`. */
  advance(n: number): void {
    if (this.failure) throw this.failure;
    if (!this.decide()) throw new Error('advance() without the hash worker reading the .part');
    this.checkCap(n);
    this.bytes += n;
    this.opts.onBytes?.(this.bytes);
  }

  private checkCap(n: number): void {
    if (this.opts.maxBytes !== undefined && this.bytes + n > this.opts.maxBytes) {
      // Cut here, before hashing or extracting a byte past the cap: an endless body costs at most `size` bytes.
      throw new DownloadError('ERR_SIZE_LIMIT', `Cannot download ${this.opts.url?.() ?? 'the archive'}: it is longer than the component's "size" (${this.opts.maxBytes} bytes)`, {
        data: { url: this.opts.url?.(), limit: 'size', value: this.bytes + n, max: this.opts.maxBytes, maxBytes: this.opts.maxBytes },
      });
    }
  }

  /** Where gunzip runs, decided once, before the first byte is hashed. */
  private decide(): boolean {
    if (this.remote === undefined) {
      this.remote = this.opts.offThread?.() ?? false;
      if (this.remote) this.extraction.inflateFrom(this.hasher.offThread());
    }
    return this.remote;
  }

  /** Hashes and forwards chunks; resolves when gunzip can take more. */
  async push(chunks: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    const remote = this.decide();
    const input = remote ? undefined : this.extraction.input;
    let ok = true;
    for (const c of chunks) {
      this.checkCap(c.length);
      this.hasher.update(c);
      this.bytes += c.length;
      if (input) ok = input.write(c);
    }
    this.opts.onBytes?.(this.bytes);
    if (ok || !input) return;
    await new Promise<void>((resolve, reject) => {
      const onFail = (err: Error) => { input.off('drain', onDrain); reject(err); };
      const onDrain = () => { this.waiters.delete(onFail); resolve(); };
      this.waiters.add(onFail);
      input.once('drain', onDrain);
    });
  }

  private bypass = false;

  /**
   * A link faster than this pass (`download-attempt.ts`): from the next batch on, bytes go to the
   * hash worker through a shared ring instead of the `.part` (`part-ring.ts`). Only when it inflates.
   */
  bypassPart(): void {
    if (this.decide()) this.bypass = true;
  }

  /** Whether the batch at archive offset `pos` goes through the ring (switching there if asked to). */
  ringAt(pos: number): boolean {
    if (this.bypass && !this.hasher.inRing) this.hasher.toRing(pos);
    return this.hasher.inRing;
  }

  /** Bytes the `.part` holds: every byte, unless a fast link bypassed it from some offset on. */
  get partBytes(): number {
    return this.hasher.ringFrom ?? this.bytes;
  }

  /** Copies a batch that ends at archive offset `end` into the ring, once counted (`push`), and tells the worker. */
  async ringWrite(bufs: readonly Buffer[], end: number): Promise<void> {
    if (this.bytes < end) return; // the size cap cut the batch: `push` reports it
    await this.hasher.ringWrite(bufs);
    this.hasher.onDisk(end);
  }

  /** While the link is measured: the hash worker reads nothing new (`PartHasher.hold`). */
  holdHashing(on: boolean): void {
    this.hasher.hold(on);
  }

  /** The `.part` holds the fed bytes `[0, n)`: the hash worker may read them. */
  onDisk(n: number): void {
    this.hasher.onDisk(n);
  }

  /** No more bytes: ends gunzip's input here, or (inflating off-thread) lets `digest()` end it there. */
  endInput(): void {
    if (!this.decide()) this.extraction.input.end();
  }

  /** The digest of everything pushed (once on disk); call once, at the end. */
  digest(): Promise<string> {
    return this.hasher.digest(this.bytes);
  }

  /** Stops the hash worker. */
  close(): void {
    this.hasher.close();
  }
}

/**
 * A Writable over an ArchiveSink. `_writev` takes whatever piled up while
 * the previous write was on disk, so writes batch themselves under load.
 * `fatal` is set when the failure came from our side (disk, size cap,
 * archive), as opposed to the source: only source failures are retried.
 */
export class Feed extends Writable {
  fatal: Error | undefined;
  private position: number;
  private readonly sink: ArchiveSink;
  private readonly part: { fh: FileHandle; position: number } | undefined;

  constructor(sink: ArchiveSink, part?: { fh: FileHandle; position: number }) {
    super({ highWaterMark: 1 << 20 });
    this.sink = sink;
    this.part = part;
    this.position = part?.position ?? 0;
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    // One buffer per batch when gunzip runs here: each separate write into gunzip is its own
    // thread-pool round trip (bench/: ~4,000 instead of ~700 for 256 MB, 3x the futex and epoll
    // calls, ~13% more CPU and wall time). When the hash worker inflates, the batch goes to the
    // .part alone, as one writev of the chunks: no copy, and no fresh memory to fault in.
    const bufs = chunks.length === 1 || this.sink.readsPart() ? chunks.map((c) => c.chunk) : [Buffer.concat(chunks.map((c) => c.chunk))];
    let len = 0;
    for (const b of bufs) len += b.length;
    const pos = this.position;
    this.position += len;
    let disk: Promise<void> | undefined;
    let pipe: Promise<void>;
    if (this.part && this.sink.ringAt(pos)) {
      // A fast link: counted and capped first, then into the ring; the .part keeps its prefix.
      pipe = this.sink.push(bufs);
      disk = this.sink.ringWrite(bufs, pos + len);
    } else {
      // The file write and the pipeline run side by side; the .part only ever holds bytes that were hashed.
      // Replayed bytes are on disk already; received ones once written. Either way the hash worker reads them back.
      disk = this.part ? writeAllAt(this.part.fh, bufs, pos).then(() => this.sink.onDisk(pos + len)) : undefined;
      if (!this.part) this.sink.onDisk(pos + len);
      pipe = this.sink.push(bufs);
    }
    Promise.all([disk, pipe]).then(() => cb(), (err: Error) => {
      this.fatal ??= err;
      // A failed .part write (ENOSPC) must also stop the extraction: a push waiting for gunzip
      // to drain would otherwise wait forever, and `inflight` with it.
      this.sink.extraction.abort(err);
      cb(err);
    });
    this.inflight = Promise.allSettled([disk, pipe]).then(() => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  /** Settles when the last batch handed to disk and pipeline is done, even after a destroy. */
  inflight: Promise<void> = Promise.resolve();
}
