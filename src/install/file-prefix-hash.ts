/**
 * SHA-256 of a file's prefix while the file grows: `upto(n)` says bytes
 * `[0, n)` are written; they are read back (a page-cache read) and hashed in
 * order. Runs in the hash worker (`workers/hash.worker.ts`).
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

const CHUNK = 1 << 20;

export interface PrefixHash {
  upto(bytes: number): void;
  /** Hashes up to `bytes` and gives the hex digest. */
  finish(bytes: number): Promise<string>;
}

export function hashFilePrefix(file: string): PrefixHash {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK);
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
      hash.update(buf.subarray(0, bytesRead));
      hashed += bytesRead;
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
