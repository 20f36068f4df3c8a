/**
 * SHA-256 of a file's prefix while the file grows: `upto(n)` says bytes
 * `[0, n)` are written; they are read back (a page-cache read) and hashed in
 * order. Runs in the hash worker (`workers/hash.worker.ts`). With `next`,
 * each chunk read is also handed on (to gunzip: `inflate-relay.ts`), read
 * into a buffer `next.buffer()` lends (gunzip holds on to it until it has
 * inflated it), and the next read waits for what `next.chunk` returns.
 * After `fromRing(ring, from)`, bytes from `from` on are copied out of the
 * shared ring the install worker writes (`part-ring.ts`) instead of read
 * from the file, and `freed` says how far the ring has been copied out.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { copyOut } from './part-ring.ts';

export const CHUNK = 1 << 20;

export interface PrefixHash {
  upto(bytes: number): void;
  /** Hashes up to `bytes` and gives the hex digest. */
  finish(bytes: number): Promise<string>;
  /** Bytes from `from` on are in `ring` (once written there, `upto`), not in the file. */
  fromRing(ring: SharedArrayBuffer, from: number): void;
}

export interface ChunkSink {
  /** A buffer of at least CHUNK bytes to read the next chunk into. */
  buffer(): Buffer;
  chunk(chunk: Buffer): Promise<void> | undefined;
}

export function hashFilePrefix(file: string, next?: ChunkSink, freed?: (upto: number) => void): PrefixHash {
  const hash = createHash('sha256');
  const own = next ? undefined : Buffer.allocUnsafe(CHUNK);
  let fh: Promise<FileHandle> | undefined;
  let hashed = 0;
  let target = 0;
  let running: Promise<void> | undefined;
  let ring: { view: Uint8Array; from: number } | undefined;
  const read = async (buf: Buffer, n: number): Promise<number> => {
    if (ring && hashed >= ring.from) {
      copyOut(ring.view, ring.from, hashed, buf.subarray(0, n));
      freed?.(hashed + n);
      return n;
    }
    if (ring) n = Math.min(n, ring.from - hashed); // the file's part ends where the ring's begins
    fh ??= open(file, 'r');
    const { bytesRead } = await (await fh).read(buf, 0, n, hashed);
    return bytesRead;
  };
  const pump = async () => {
    while (hashed < target) {
      const n = Math.min(CHUNK, target - hashed);
      const buf = own ?? next!.buffer();
      const bytesRead = await read(buf, n);
      if (bytesRead === 0) throw new Error(`Cannot hash ${file}: it ends at ${hashed} bytes, before the ${target} written to it`);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      hashed += bytesRead;
      if (next) await next.chunk(chunk);
    }
  };
  const kick = () => {
    running ??= pump().finally(() => { running = undefined; });
    return running;
  };
  let failure: unknown;
  return {
    upto(bytes) {
      if (bytes <= target) return;
      target = bytes;
      kick().catch((err: unknown) => { failure ??= err; });
    },
    async finish(bytes) {
      target = Math.max(target, bytes);
      while (hashed < target) {
        if (failure) throw failure;
        await kick();
      }
      if (failure) throw failure;
      if (fh) await (await fh).close();
      return hash.digest('hex');
    },
    fromRing(buffer, from) {
      ring = { view: new Uint8Array(buffer), from };
    },
  };
}
