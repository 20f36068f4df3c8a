/**
 * One writer per entry kind (file, folder, symlink, hard link), node-tar
 * style. Each creates exactly one thing at a path the tree writer checked,
 * never through a link: files with O_EXCL|O_NOFOLLOW, folders one level at a
 * time.
 */
import { createHash } from 'node:crypto';
import { constants as fsc, createWriteStream } from 'node:fs';
import { chmod, link, mkdir, symlink } from 'node:fs/promises';
import { fsyncPath } from '../base/atomic-file.ts';
import type { ExtractEvents } from 'tar-stream';

/** tar-stream's entry body. */
export type Body = ExtractEvents['entry'][1];

const FILE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

export interface FileWrite {
  abs: string;
  mode: number;
  /** The size the header declares; a body of any other length is refused. */
  size: number;
  highWaterMark: number;
  /** fsync the file before closing it (durable before visible). */
  sync: boolean;
  /** Called with each chunk's length as it arrives (extracted-bytes progress). */
  onBytes(n: number): void;
  /** The error for a body longer or shorter than `size`. */
  corrupt(reason: string): Error;
  /** Hash the body on the way (false: the hash worker hashed it from the tar stream). @default true */
  hash?: boolean;
}

/**
 * Streams one body into a new file with back-pressure, hashing it on the way
 * (so `lander verify` has a per-file digest without a second read).
 */
export async function writeFile(body: Body, w: FileWrite): Promise<{ size: number; sha256: string | undefined }> {
  const hash = w.hash === false ? undefined : createHash('sha256');
  const n = await new Promise<number>((resolve, reject) => {
    const ws = createWriteStream(w.abs, { flags: FILE_FLAGS as unknown as string /* numeric flags are accepted at runtime; @types/node says string */, mode: w.mode, highWaterMark: w.highWaterMark });
    let got = 0;
    let failed = false;
    const bail = (err: Error) => {
      if (failed) return;
      failed = true;
      ws.destroy();
      body.destroy();
      reject(err);
    };
    body.on('data', (data) => {
      const chunk = data as Buffer;
      got += chunk.length;
      w.onBytes(chunk.length);
      if (got > w.size) return bail(w.corrupt(`has a body longer than its header's ${w.size} bytes`));
      hash?.update(chunk);
      if (!ws.write(chunk)) {
        body.pause();
        ws.once('drain', () => body.resume());
      }
    });
    body.on('end', () => ws.end());
    body.on('error', bail);
    ws.on('error', bail);
    // 'close', not 'finish': the fd is closed, so a sync or chmod below never races the stream.
    ws.on('close', () => {
      if (failed) return;
      if (got !== w.size) return bail(w.corrupt(`has ${got} bytes, not the ${w.size} its header says`));
      resolve(got);
    });
  });
  // umask may have narrowed the mode; the store relies on the clamped one.
  if ((w.mode & umask) !== 0) await chmod(w.abs, w.mode);
  if (w.sync) await fsyncPath(w.abs);
  return { size: n, sha256: hash?.digest('hex') };
}

/** Made 0700 so extraction can write into it; the tree writer gives it 0755 at the end. */
export async function writeDirectory(abs: string): Promise<void> {
  await mkdir(abs, { mode: 0o700 });
}

export async function writeSymlink(abs: string, linkname: string): Promise<void> {
  await symlink(linkname, abs);
}

export async function writeHardlink(abs: string, targetAbs: string): Promise<void> {
  await link(targetAbs, abs);
}

/** Reads a body nobody needs (folders, links) to its end. */
export function drain(body: Body): Promise<void> {
  return new Promise((resolve, reject) => {
    body.on('end', resolve);
    body.on('error', reject);
    body.resume();
  });
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
