/**
 * The hash worker's gunzip, for a large single stream: the archive bytes it
 * reads back from the `.part` (and hashes) go through gunzip here, and the
 * tar stream goes to the install worker, which only parses tar and writes
 * files. Node's zlib inflates one chunk at a time in the thread pool and
 * queues the next from its callback: on the install worker that callback
 * waited behind socket reads, tar parsing, per-file hashing and writes, so
 * inflate and the rest took turns instead of running side by side. Here
 * nothing else runs on the thread but each file body's SHA-256, taken from
 * the tar stream right after it is inflated, in slices between zlib's
 * callbacks (`tar-body-hasher.ts`): the install worker writes files without
 * hashing them. (Hashing whole chunks at once here delayed those callbacks:
 * 14% slower than hashing on the install worker.)
 *
 * `consumed` counts the archive bytes handed to gunzip (the expansion-ratio
 * guard's denominator, as on the install worker). Flow control is by
 * credit: at most `windowBytes` of tar stream posted and not yet taken by the
 * install worker; past that, reading and inflating wait. Output is
 * transferred, a whole zlib buffer at a time, not cloned (the install worker
 * copies it once into memory of its own: `part-hasher.ts`).
 */
import { createGunzip, type Gunzip } from 'node:zlib';
import { CHUNK as READ_CHUNK, type ChunkSink } from './file-prefix-hash.ts';
import { TarBodyHasher, type HashStep } from './tar-body-hasher.ts';
import type { HashEvent } from '../../workers/protocol.ts';

/** What the relay posts: the hash worker's events about the tar stream. */
export type RelayEvent = Extract<HashEvent, { type: 'tar' | 'tar-end' | 'tar-error' | 'body-sha' }>;

/** Takes the chunks `hashFilePrefix` reads (`buffer()`: one gunzip has finished with, or a new one). */
export interface InflateRelay extends ChunkSink {
  /** Hands one chunk of archive bytes (in a buffer from `buffer()`) to gunzip; resolves when the next may be read. */
  chunk(chunk: Buffer): Promise<void>;
  /** No more archive bytes (after the last write is taken). */
  end(): Promise<void>;
  /** The install worker took `bytes` of tar stream. */
  credit(bytes: number): void;
}

/** Bytes hashed per turn of the event loop: a zlib callback waits at most this long (~0.1 ms). */
const SLICE = 128 << 10;

type Work = HashStep | { kind: 'flush'; buf: ArrayBuffer; start: number; end: number } | { kind: 'end' };

export function inflateRelay(o: { windowBytes: number; chunkBytes: number; maxMetaBytes: number; post(e: RelayEvent, transfer?: ArrayBuffer[]): void }): InflateRelay {
  const gunzip: Gunzip = createGunzip({ chunkSize: o.chunkBytes });
  const bodies = new TarBodyHasher(o.maxMetaBytes);
  /** Tar stream posted and not yet credited, and inflated but not yet posted (hashing first). */
  let outstanding = 0;
  let queued = 0;
  let consumed = 0;
  let failed = false;
  let wake: (() => void) | undefined;
  const release = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const full = () => outstanding + queued > o.windowBytes;

  // Work in stream order: body hashing, then the bytes it read go out. Run in slices, so zlib's
  // callbacks (the next inflate) never wait behind a whole file's hash.
  const work: Work[] = [];
  let scheduled = false;
  const schedule = () => {
    if (scheduled || work.length === 0) return;
    scheduled = true;
    setImmediate(run);
  };
  const run = () => {
    scheduled = false;
    let budget = SLICE;
    while (work.length > 0 && budget > 0 && !failed) {
      const w = work[0]!;
      if (w.kind === 'update') {
        const n = Math.min(budget, w.bytes.length);
        w.hash.update(n === w.bytes.length ? w.bytes : w.bytes.subarray(0, n));
        budget -= n;
        if (n < w.bytes.length) {
          w.bytes = w.bytes.subarray(n);
          break;
        }
      } else if (w.kind === 'digest') {
        o.post({ type: 'body-sha', offset: w.offset, sha256: w.hash.digest('hex') });
      } else if (w.kind === 'flush') {
        const chunk = new Uint8Array(w.buf, w.start, w.end - w.start);
        queued -= chunk.length;
        outstanding += chunk.length;
        o.post({ type: 'tar', chunk, consumed }, [w.buf]);
      } else {
        o.post({ type: 'tar-end', consumed });
      }
      work.shift();
    }
    if (full()) gunzip.pause();
    else if (gunzip.isPaused() && !failed) gunzip.resume();
    schedule();
  };

  // zlib writes its output into one buffer until it is full, then allocates the next and never touches
  // the old one again: the pieces it hands out are kept, and the whole buffer moves (no copy) once full.
  let held: { buf: ArrayBuffer; start: number; end: number } | undefined;
  const flush = () => {
    if (!held) return;
    work.push({ kind: 'flush', ...held });
    held = undefined;
  };
  gunzip.on('data', (out: Buffer) => {
    queued += out.length;
    for (const step of bodies.plan(out)) work.push(step);
    const buf = out.buffer as ArrayBuffer;
    if (held && (held.buf !== buf || held.end !== out.byteOffset)) flush();
    if (held) held.end += out.length;
    else held = { buf, start: out.byteOffset, end: out.byteOffset + out.length };
    if (held.end === buf.byteLength) flush();
    if (full()) gunzip.pause();
    schedule();
  });
  gunzip.on('end', () => {
    flush();
    work.push({ kind: 'end' });
    schedule();
  });
  gunzip.on('error', (err: NodeJS.ErrnoException) => {
    failed = true;
    work.length = 0;
    o.post({ type: 'tar-error', message: err.message, ...(err.code ? { code: err.code } : {}) });
    release();
  });

  let drained: Promise<void> = Promise.resolve();
  // Input buffers come back once gunzip has inflated them: two or three in use, not one per MiB read
  // (fresh ones were garbage only a GC returns: ~60 MiB more peak RSS).
  const free: Buffer[] = [];
  return {
    buffer: () => free.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK),
    async chunk(chunk) {
      // Read and hash this chunk while the one before inflates; hand it over once gunzip wants more.
      await drained;
      if (failed) return;
      consumed += chunk.length;
      const whole = Buffer.from(chunk.buffer, 0, chunk.buffer.byteLength);
      if (gunzip.write(chunk, () => free.push(whole))) return;
      drained = new Promise<void>((resolve) => {
        wake = resolve;
        gunzip.once('drain', release);
      });
    },
    async end() {
      await drained;
      if (!failed) gunzip.end();
    },
    credit(bytes) {
      outstanding -= bytes;
      if (!full() && gunzip.isPaused() && !failed) gunzip.resume();
    },
  };
}
