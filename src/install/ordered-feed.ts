/**
 * Feeds the one pass in order from a `.part` that segments fill out of
 * order: reads the contiguous prefix as it grows (bytes already on disk, so
 * a page-cache read) and pushes it through the sink (SHA-256, size cap,
 * gunzip, tar). Hash, inflate and extract start with the first segment.
 * When the hash worker inflates (a large archive), it reads the `.part`
 * itself: the prefix is then only counted, never read here.
 */
import type { FileHandle } from 'node:fs/promises';
import { contiguousEnd, mergeRanges, type ByteRange } from '../fetch/byte-ranges.ts';
import type { ArchiveSink } from './archive-sink.ts';

/** Read size per push: one thread-pool round trip into gunzip per MiB. */
const CHUNK = 1 << 20;

export class OrderedFeed {
  /** Bytes on disk (merged), including those already fed. */
  covered: ByteRange[];
  private readonly fh: FileHandle;
  private readonly sink: ArchiveSink;
  private readonly total: number;
  private wake: (() => void) | undefined;
  private stopped = false;
  private ended = false;

  constructor(o: { fh: FileHandle; sink: ArchiveSink; total: number; covered: ByteRange[] }) {
    this.fh = o.fh;
    this.sink = o.sink;
    this.total = o.total;
    this.covered = mergeRanges(o.covered);
  }

  /** Bytes `[from, to)` are on disk now. */
  add(from: number, to: number): void {
    this.covered = mergeRanges([...this.covered, { start: from, end: to }]);
    this.wake?.();
  }

  /** Ends `run` after the push in progress (the sink then holds exactly what was fed). */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** No more bytes will come: `run` fails if a gap is left before `total`. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /**
   * Pushes bytes from `sink.bytes` on until `total`, or until stopped; rejects with the sink's failure.
   * The next chunk is read while the current one goes through gunzip (a page-cache read is a
   * thread-pool round trip: one at a time, they took turns with inflate).
   */
  async run(): Promise<void> {
    let next: Promise<Buffer> | undefined;
    let nextAt = -1;
    const unread = this.sink.readsPart();
    while (!this.stopped && this.sink.bytes < this.total) {
      const pos = this.sink.bytes;
      let buf: Buffer;
      if (next && nextAt === pos) {
        buf = await next;
      } else {
        const avail = Math.min(this.total, contiguousEnd(this.covered, pos));
        if (avail <= pos) {
          if (this.ended) throw new Error(`the segments left a gap at byte ${avail} of ${this.total}`);
          await new Promise<void>((resolve) => { this.wake = resolve; });
          this.wake = undefined;
          continue;
        }
        if (unread) {
          // The hash worker reads the .part itself: only say how far it holds the bytes.
          this.sink.advance(avail - pos);
          this.sink.onDisk(avail);
          continue;
        }
        buf = await this.read(pos, Math.min(CHUNK, avail - pos));
      }
      next = undefined;
      const after = pos + buf.length;
      const availAfter = Math.min(this.total, contiguousEnd(this.covered, after));
      if (availAfter > after) {
        nextAt = after;
        next = this.read(after, Math.min(CHUNK, availAfter - after));
        next.catch(() => undefined); // seen when awaited; a stop leaves it unread
      }
      await this.sink.push([buf]);
      this.sink.onDisk(after);
    }
    await next?.catch(() => undefined); // no read in flight once run() settles
  }

  private async read(pos: number, n: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, pos + got);
      if (bytesRead === 0) throw new Error(`the .part ended at ${pos + got}, before the ${pos + n} bytes written to it`);
      got += bytesRead;
    }
    return buf;
  }
}
