/**
 * The hash worker's gunzip, for a large single stream: the archive bytes it
 * reads back from the `.part` (and hashes) go through gunzip here, and the
 * tar stream goes to the install worker, which only parses tar and writes
 * files. Node's zlib inflates one chunk at a time in the thread pool and
 * queues the next from its callback: on the install worker that callback
 * waited behind socket reads, tar parsing, per-file hashing and writes, so
 * inflate and the rest took turns instead of running side by side. Here
 * nothing else runs on the thread.
 *
 * `consumed` counts the archive bytes handed to gunzip (the expansion-ratio
 * guard's denominator, as on the install worker). Flow control is by credit: at most `windowBytes` of tar stream posted and
 * not yet taken by the install worker; past that, reading and inflating wait.
 * Output moves to the install worker without a copy, a whole zlib buffer at
 * a time.
 */
import { createGunzip, type Gunzip } from 'node:zlib';

export type RelayEvent =
  | { type: 'tar'; chunk: Uint8Array; consumed: number }
  | { type: 'tar-end'; consumed: number }
  | { type: 'tar-error'; message: string; code?: string };

export interface InflateRelay {
  /** Hands one chunk of archive bytes to gunzip; resolves when the next may be read. */
  write(chunk: Buffer): Promise<void>;
  /** No more archive bytes (after the last write is taken). */
  end(): Promise<void>;
  /** The install worker took `bytes` of tar stream. */
  credit(bytes: number): void;
}

export function inflateRelay(o: { windowBytes: number; chunkBytes: number; post(e: RelayEvent, transfer?: ArrayBuffer[]): void }): InflateRelay {
  const gunzip: Gunzip = createGunzip({ chunkSize: o.chunkBytes });
  let outstanding = 0;
  let consumed = 0;
  let failed = false;
  let wake: (() => void) | undefined;
  const release = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };

  // zlib writes its output into one buffer until it is full, then allocates the next and never touches
  // the old one again: the pieces it hands out are kept, and the whole buffer moves (no copy) once full.
  let held: { buf: ArrayBuffer; start: number; end: number } | undefined;
  const flush = () => {
    if (!held) return;
    const chunk = new Uint8Array(held.buf, held.start, held.end - held.start);
    held = undefined;
    outstanding += chunk.length;
    o.post({ type: 'tar', chunk, consumed }, [chunk.buffer as ArrayBuffer]);
    if (outstanding > o.windowBytes) gunzip.pause();
  };
  gunzip.on('data', (out: Buffer) => {
    const buf = out.buffer as ArrayBuffer;
    if (held && (held.buf !== buf || held.end !== out.byteOffset)) flush();
    if (held) held.end += out.length;
    else held = { buf, start: out.byteOffset, end: out.byteOffset + out.length };
    if (held.end === buf.byteLength) flush();
  });
  gunzip.on('end', () => {
    flush();
    o.post({ type: 'tar-end', consumed });
  });
  gunzip.on('error', (err: NodeJS.ErrnoException) => {
    failed = true;
    o.post({ type: 'tar-error', message: err.message, ...(err.code ? { code: err.code } : {}) });
    release();
  });

  let drained: Promise<void> = Promise.resolve();
  return {
    async write(chunk) {
      // Read and hash this chunk while the one before inflates; hand it over once gunzip wants more.
      await drained;
      if (failed) return;
      consumed += chunk.length;
      if (gunzip.write(chunk)) return;
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
      if (outstanding <= o.windowBytes && gunzip.isPaused()) gunzip.resume();
    },
  };
}
