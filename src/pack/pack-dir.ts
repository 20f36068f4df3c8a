/**
 * Writes a reproducible `.tar.gz` from entries of a folder: entries in the
 * given (sorted) order, one fixed mtime, uid/gid 0, empty user and group
 * names, modes normalized by walkSource (0644, 0755, links 0777), symlinks
 * kept as links. Streams with back-pressure, so memory does not grow with
 * the folder; returns the archive's SHA-256 and size. `lander pack` runs
 * `writeTarGz` in a worker (workers/pack.worker.ts); the demo calls
 * `packDirectory` directly.
 */
import { createHash } from 'node:crypto';
import { constants as fsc, createReadStream, createWriteStream } from 'node:fs';
import { lstat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { PackError } from '../base/errors.ts';
import { walkSource, type SourceEntry } from './walk.ts';
import { encodeIndex, indexDigest } from '../install/chunked/index-format.ts';
import { chunkSizes, hugeChunkSizes, smallChunkSizes } from './chunker.ts';
import { ChunkedGzip } from './chunked-gzip.ts';

export interface PackResult {
  sha256: string;
  size: number;
  entries: number;
  /** The chunk index written beside a chunked archive: `sha256` is its bound digest (of its head, indexDigest), `size` the whole file's. */
  index?: { sha256: string; size: number; members: number };
}

export interface WriteTarGzOptions {
  /** gzip level 1-9. @default 6 */
  level?: number;
  /** Header mtime. @default packMtime() */
  mtime?: Date;
  /** Called with file bytes read so far (not throttled; the caller throttles). */
  onBytes?(bytes: number): void;
  signal?: AbortSignal;
  /**
   * Cut the tar stream into content-defined chunks, one gzip member each,
   * and write their index (src/install/chunked/index-format.ts) to `indexFile`.
   * Without it the archive is one gzip member, as before.
   */
  chunked?: { indexFile: string; avgChunk?: number; entryCut?: number };
}

/** The mtime written into every header: SOURCE_DATE_EPOCH, else 2020-01-01. */
export function packMtime(): Date {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  return new Date((Number.isFinite(epoch) && epoch > 0 ? epoch : 1_577_836_800) * 1000);
}

// O_NOFOLLOW: a file swapped for a symlink while packing is refused, never followed out of the folder.
const READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW;

/**
 * Streams `entries` (paths relative to `dir`) into `outFile` as tar + gzip.
 * The gzip header carries no name and mtime 0 (zlib's default), so equal
 * input gives equal bytes with the same zlib.
 *
 * @throws PackError `ERR_PACK_SOURCE` when a file changed size or type since it was listed.
 */
export async function writeTarGz(dir: string, entries: Iterable<SourceEntry>, outFile: string, opts: WriteTarGzOptions = {}): Promise<PackResult> {
  const pack = tar.pack();
  const hash = createHash('sha256');
  let size = 0;
  let count = 0;
  let read = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const chunker = opts.chunked ? new ChunkedGzip({ sizes: chunkSizes(opts.chunked.avgChunk), smallSizes: smallChunkSizes(opts.chunked.avgChunk), hugeSizes: hugeChunkSizes(opts.chunked.avgChunk), level: opts.level ?? 6, ...(opts.chunked.entryCut !== undefined ? { entryCut: opts.chunked.entryCut } : {}) }) : undefined;
  const gzip = chunker ?? createGzip({ level: opts.level ?? 6, chunkSize: 1 << 20 });
  const written = pipeline(pack, gzip, tee, createWriteStream(outFile), ...(opts.signal ? [{ signal: opts.signal }] : []));
  // A failure in the entry loop must also end the write side, and a write failure the loop.
  let failure: unknown;
  written.catch((err: unknown) => (failure ??= err));
  const base = { mtime: opts.mtime ?? packMtime(), uid: 0, gid: 0, uname: '', gname: '' };
  try {
    for (const e of entries) {
      if (failure) throw failure;
      opts.signal?.throwIfAborted();
      count++;
      if (e.type === 'symlink') await entry(pack, { ...base, name: e.path, type: 'symlink', linkname: e.linkname!, mode: 0o777 });
      else if (e.type === 'directory') await entry(pack, { ...base, name: `${e.path}/`, type: 'directory', mode: 0o755 });
      else {
        const abs = path.join(dir, e.path);
        const st = await lstat(abs);
        if (!st.isFile() || st.size !== e.size) {
          throw new PackError('ERR_PACK_SOURCE', `Cannot pack ${JSON.stringify(e.path)}: it changed while packing (was a ${e.size}-byte file, is now ${st.isFile() ? `${st.size} bytes` : 'not a file'}); pack a folder nothing writes to`, { data: { path: e.path } });
        }
        const header = { ...base, name: e.path, type: 'file' as const, size: e.size, mode: e.mode };
        if (e.size === 0) {
          await new Promise<void>((resolve, reject) => pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
          continue;
        }
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
          const src = createReadStream(abs, { flags: READ_FLAGS as unknown as string /* numeric flags work at runtime; @types/node says string */, highWaterMark: 1 << 20, start: 0, end: e.size - 1 });
          src.on('data', (chunk) => opts.onBytes?.((read += chunk.length)));
          // A file that shrank after the lstat ends early; tar-stream then reports the size mismatch.
          pipeline(src, sink).catch(reject);
        });
      }
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => {});
    throw err;
  }
  await written;
  const sha256 = hash.digest('hex');
  if (!chunker) return { sha256, size, entries: count };
  const tarSize = chunker.members.reduce((n, m) => n + m.tarLength, 0);
  const index = encodeIndex({ archiveSize: size, archiveSha256: sha256, tarSize, avgChunk: chunkSizes(opts.chunked!.avgChunk).avg, members: chunker.members, entries: chunker.entries });
  await writeFile(opts.chunked!.indexFile, index);
  return { sha256, size, entries: count, index: { sha256: indexDigest(index), size: index.length, members: chunker.members.length } };
}

function entry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
}

/** Packs a whole folder in this thread (the demo's small releases). */
export async function packDirectory(dir: string, outFile: string, opts: Pick<WriteTarGzOptions, 'level' | 'chunked' | 'signal'> = {}): Promise<PackResult> {
  return writeTarGz(dir, await walkSource(dir), outFile, opts);
}
