/**
 * SHA-256 of a file's prefix while the file grows: `upto(n)` says bytes
 * `[0, n)` are written; they are read back (a page-cache read) and hashed in
 * order. Runs in the hash worker (`workers/hash.worker.ts`). With `onChunk`,
 * each chunk read is also handed on (to gunzip: `inflate-relay.ts`) in a
 * buffer of its own, and the next read waits for what `onChunk` returns.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

const CHUNK = 1 << 20;

export interface PrefixHash {
  upto(bytes: number): void;
  /** Hashes up to `bytes` and gives the hex digest. */
  finish(bytes: number): Promise<string>;
}

export function hashFilePrefix(file: string, onChunk?: (chunk: Buffer) => Promise<void> | undefined): PrefixHash {
  const hash = createHash('sha256');
  let buf = Buffer.allocUnsafe(CHUNK);
  let fh: Promise<FileHandle> | undefined;
  let hashed = 0;
  let target = 0;
  let running: Promise<void> | undefined;
  const pump = async () => {
    fh ??= open(file, 'r');
    const f = await fh;
    while (hashed < target) {
      const n = Math.min(CHUNK, target - hashed);
      const { bytesRead } = await f.read(buf, 0, n, hashed);
      if (bytesRead === 0) throw new Error(`Cannot hash ${file}: it ends at ${hashed} bytes, before the ${target} written to it`);
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      hashed += bytesRead;
      if (onChunk) {
        buf = Buffer.allocUnsafeSlow(CHUNK); // gunzip holds on to `chunk` until it has inflated it
        await onChunk(chunk);
      }
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
