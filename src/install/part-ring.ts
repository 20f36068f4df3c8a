/**
 * A ring of shared memory between the install worker and its hash worker:
 * on a link faster than the one pass (the probe and its recheck said so,
 * `download-attempt.ts`), the archive bytes go from the socket into this
 * ring instead of the `.part`, and the hash worker copies them out where it
 * would have read them back from the page cache. That saves the write into
 * the page cache and the read back (~0.5 s of CPU for 531 MB on two cores)
 * and the writeback of bytes that are deleted after the install. On such a
 * link, a download cut by a kill costs less to fetch again than the `.part`
 * costs to write: the `.part` keeps the prefix written before the switch,
 * which a later run resumes from; a break within the run resumes from the
 * bytes the pipeline has, as before.
 *
 * Archive byte `p` (from `from` on) lives at `(p - from) % size`. The writer
 * waits for room (`release`, told by the reader's `freed` messages); the
 * reader is told how far the writer got by the hash worker's `upto`. The
 * messages order the memory: a byte is read after the message that says it
 * was written, and overwritten after the message that says it was read.
 */

/** Default ring size: the bytes a fast socket may run ahead of hash and inflate. */
export const RING_BYTES = 8 << 20;

export class PartRing {
  readonly buffer: SharedArrayBuffer;
  readonly from: number;
  private readonly view: Uint8Array;
  /** Archive offset written up to, and released (read) up to. */
  private written: number;
  private freed: number;
  private wait: { need: number; resolve(): void; reject(err: Error): void } | undefined;
  private failure: Error | undefined;

  /** Called before the writer waits for room: the reader must hear of every byte written so far. */
  private readonly onFull: (written: number) => void;

  constructor(from: number, onFull: (written: number) => void, size = RING_BYTES) {
    this.onFull = onFull;
    this.buffer = new SharedArrayBuffer(size);
    this.view = new Uint8Array(this.buffer);
    this.from = from;
    this.written = from;
    this.freed = from;
  }

  /** Archive bytes written so far (the offset of the next one). */
  get end(): number {
    return this.written;
  }

  /** Copies `bufs` in at the end, waiting for room as the reader frees it; resolves when all are in. */
  async write(bufs: readonly Uint8Array[]): Promise<void> {
    const size = this.view.length;
    for (const b of bufs) {
      let at = 0;
      while (at < b.length) {
        if (this.failure) throw this.failure;
        const room = size - (this.written - this.freed);
        if (room === 0) {
          this.onFull(this.written);
          await new Promise<void>((resolve, reject) => { this.wait = { need: this.written - size + 1, resolve, reject }; });
          continue;
        }
        const n = Math.min(room, b.length - at);
        copyIn(this.view, (this.written - this.from) % size, b.subarray(at, at + n));
        at += n;
        this.written += n;
      }
    }
  }

  /** The reader is done with bytes before `upto`: their room may be written again. */
  release(upto: number): void {
    if (upto <= this.freed) return;
    this.freed = Math.min(upto, this.written);
    const w = this.wait;
    if (w && this.freed >= w.need) {
      this.wait = undefined;
      w.resolve();
    }
  }

  /** Fails a write waiting for room (the reader is gone), and every later one. */
  fail(err: Error): void {
    this.failure ??= err;
    const w = this.wait;
    this.wait = undefined;
    w?.reject(err);
  }
}

function copyIn(ring: Uint8Array, at: number, src: Uint8Array): void {
  const first = Math.min(src.length, ring.length - at);
  ring.set(first === src.length ? src : src.subarray(0, first), at);
  if (first < src.length) ring.set(src.subarray(first), 0);
}

/** The reader's side: copies archive bytes `[offset, offset + dst.length)` out of the ring into `dst`. */
export function copyOut(ring: Uint8Array, from: number, offset: number, dst: Uint8Array): void {
  const at = (offset - from) % ring.length;
  const first = Math.min(dst.length, ring.length - at);
  dst.set(ring.subarray(at, at + first), 0);
  if (first < dst.length) dst.set(ring.subarray(0, dst.length - first), first);
}
