/**
 * SHA-256 of a file's prefix while the file grows: `upto(n)` says bytes
 * `[0, n)` are written; they are read back (a page-cache read) and hashed in
 * order. Runs in the hash worker (`workers/hash.worker.ts`). With `next`,
 * each chunk read is also handed on (to gunzip: `inflate-relay.ts`), read
 * into a buffer `next.buffer()` lends (gunzip holds on to it until it has
 * inflated it), and the next read waits for what `next.chunk` returns.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

export const CHUNK = 1 << 20;

export interface PrefixHash {
  upto(bytes: number): void;
  /** Hashes up to `bytes` and gives the hex digest. */
  finish(bytes: number): Promise<string>;
}

export interface ChunkSink {
  /** A buffer of at least CHUNK bytes to read the next chunk into. */
  buffer(): Buffer;
  chunk(chunk: Buffer): Promise<void> | undefined;
}

export function hashFilePrefix(file: string, next?: ChunkSink): PrefixHash {
  const hash = createHash('sha256');
  const own = next ? undefined : Buffer.allocUnsafe(CHUNK);
  let fh: Promise<FileHandle> | undefined;
  let hashed = 0;
  let target = 0;
  let running: Promise<void> | undefined;
  const pump = async () => {
    fh ??= open(file, 'r');
    const f = await fh;
    while (hashed < target) {
      const n = Math.min(CHUNK, target - hashed);
      const buf = own ?? next!.buffer();
      const { bytesRead } = await f.read(buf, 0, n, hashed);
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
  };
}
