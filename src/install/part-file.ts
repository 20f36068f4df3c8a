/**
 * The resumable `.part` file and its `<partPath>.json` metadata: which URL
 * the bytes came from and the validators (ETag, Last-Modified) that make a
 * Range request safe with If-Range.
 */
import { constants as fsc } from 'node:fs';
import type { ByteRange } from '../fetch/byte-ranges.ts';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';

export interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  /** Archive size when the server said it. */
  total?: number;
  /**
   * Ranges on disk, for a segmented download (the file then has holes):
   * only these bytes are trusted. Absent for a single stream, whose bytes
   * are the file's prefix.
   */
  done?: ByteRange[];
}

/** Reads `<partPath>.json`; undefined when missing or not what we wrote (the `.part` is then not trusted). */
export async function readPartMeta(partPath: string): Promise<PartMeta | undefined> {
  let text: string;
  try {
    text = await readFile(`${partPath}.json`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const m = JSON.parse(text) as Partial<PartMeta>;
    if (typeof m.url !== 'string') return undefined;
    return {
      url: m.url,
      ...(typeof m.etag === 'string' ? { etag: m.etag } : {}),
      ...(typeof m.lastModified === 'string' ? { lastModified: m.lastModified } : {}),
      ...(Number.isSafeInteger(m.total) ? { total: m.total } : {}),
      ...(Array.isArray(m.done) ? { done: m.done.filter(isRange) } : {}),
    };
  } catch {
    return undefined; // a torn write from a crash: start over rather than trust the bytes
  }
}

function isRange(r: unknown): r is ByteRange {
  const x = r as ByteRange;
  return typeof x === 'object' && x !== null && Number.isSafeInteger(x.start) && Number.isSafeInteger(x.end) && x.start >= 0 && x.end > x.start;
}

/** Writes the metadata via a temp file and rename, so a crash never leaves half a JSON. */
export async function writePartMeta(partPath: string, meta: PartMeta): Promise<void> {
  const tmp = `${partPath}.json.tmp`;
  await writeFile(tmp, JSON.stringify(meta), { mode: 0o600 });
  await rename(tmp, `${partPath}.json`);
}

/** Deletes the `.part` and its metadata. */
export async function removePart(partPath: string): Promise<void> {
  await rm(partPath, { force: true });
  await rm(`${partPath}.json`, { force: true });
  await rm(`${partPath}.json.tmp`, { force: true });
}

/** Opens (creating) the `.part` for positional writes; returns its handle and current size. */
export async function openPart(partPath: string): Promise<{ fh: FileHandle; size: number }> {
  const fh = await open(partPath, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  const size = (await fh.stat()).size;
  return { fh, size };
}

/** Size of a file, or 0 when it does not exist. */
export async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

