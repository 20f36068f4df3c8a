/**
 * Fetching a format 2 chunk index: the head first (its SHA-256 is the bound
 * digest), then only the pages and leaves whose hashes no kept index of an
 * installed entry holds, by Range in coalesced runs; each part is checked
 * against the hash above it before anything reads it. Without kept indexes
 * (a first install) the whole file comes in one GET, as it does from a
 * server without ranges.
 *
 * `planIndexRuns` is the pure part, shared with bench/delta.ts, so the bench
 * counts exactly the ranges an install asks for.
 */
import { createHash } from 'node:crypto';
import { ArchiveError, DigestMismatchError, DownloadError, hasCode, LanderError } from '../../base/errors.ts';
import { backoffDelay, sleep } from '../../base/backoff.ts';
import { decodeIndex, headEnd, INDEX_LIMITS, indexDigest, INDEX_PREFIX, leafParts, parseHead, type ChunkIndex, type IndexHead, type IndexPart } from './index-format.ts';
import type { RangeSource } from './range-source.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Pages and leaves of kept index files, by the SHA-256 (hex) of their bytes (computed here, so a damaged file only misses). */
export function knownParts(files: readonly Buffer[]): Map<string, Buffer> {
  const known = new Map<string, Buffer>();
  for (const f of files) {
    let head: IndexHead;
    let leaves: IndexPart[];
    try {
      head = parseHead(f);
      if (head.fileSize > f.length) continue;
      const pages = head.pages.map((p) => f.subarray(p.offset, p.offset + p.length));
      leaves = leafParts(head, pages);
    } catch {
      continue; // not a format 2 index, or damaged: nothing to take from it
    }
    for (const p of [...head.pages, ...leaves]) {
      if (p.offset + p.length > f.length) continue;
      const b = f.subarray(p.offset, p.offset + p.length);
      known.set(sha(b), b);
    }
  }
  return known;
}

export interface IndexRun {
  /** Byte range in the index file, end exclusive. */
  start: number;
  end: number;
}

/** The parts not in `known`, as runs of neighbours (one Range request each). */
export function planIndexRuns(parts: readonly IndexPart[], known: ReadonlyMap<string, Buffer>): IndexRun[] {
  const runs: IndexRun[] = [];
  for (const p of parts) {
    if (known.has(p.sha256)) continue;
    const last = runs[runs.length - 1];
    if (last && last.end === p.offset) last.end = p.offset + p.length;
    else runs.push({ start: p.offset, end: p.offset + p.length });
  }
  return runs;
}

export interface IndexFetchRequest {
  component: string;
  version: string;
  url: string;
  /**
   * The bound digest: SHA-256 of the index file's head (indexDigest), which
   * lets the index be fetched piecewise; the SHA-256 of the whole file (an
   * OCI layer descriptor's) is accepted too, and costs the whole file.
   */
  sha256: string;
  /** The whole file's size, when the manifest gives it: a cap. */
  size?: number;
  retries?: number;
  /** The archive's trusted digest (and size): an index for another archive is refused right after its head. */
  archive?: { sha256: string; size?: number };
}

export interface FetchedIndex {
  index: ChunkIndex;
  /** The whole index file, rebuilt from fetched and kept parts; the store keeps it. */
  file: Buffer;
  /** Body bytes fetched. */
  fetched: number;
  requests: number;
}

/** @throws DigestMismatchError (the head), ArchiveError `ERR_INDEX_INVALID` (a part), DownloadError */
export async function fetchIndexFile(req: IndexFetchRequest, source: RangeSource, signal: AbortSignal, kept: readonly Buffer[] = []): Promise<FetchedIndex> {
  // A size from a manifest (an OCI layer descriptor) is a claim: never more than any index may be.
  const cap = Math.min(req.size ?? INDEX_LIMITS.maxBytes, INDEX_LIMITS.maxBytes);
  let fetched = 0;
  let requests = 0;
  const get = async (start: number, end: number): Promise<Buffer> => {
    for (let attempt = 0; ; attempt++) {
      requests++;
      const chunks: Buffer[] = [];
      let n = 0;
      try {
        for await (const c of await source.range(req.url, start, end, signal)) {
          const take = c.subarray(0, end - start - n);
          chunks.push(take);
          n += take.length;
          fetched += c.length;
          if (n === end - start) break;
        }
        if (n === end - start) return Buffer.concat(chunks, n);
        throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download bytes ${start}-${end - 1} of the chunk index ${req.url}: the body ended after ${n} bytes`, { data: { url: req.url, start, end } });
      } catch (err) {
        if (signal.aborted || hasCode(err, 'ERR_RANGE_UNSUPPORTED') || !(err instanceof DownloadError) || attempt >= (req.retries ?? 3)) throw err;
        await sleep(backoffDelay({ attempt: attempt + 1, initialMs: 100, maxMs: 2000 }), signal);
      }
    }
  };
  const mismatch = (file: Buffer, whole: boolean) => {
    const actual = sha(whole ? file : file.subarray(0, headEnd(file)));
    return new DigestMismatchError(`Cannot install ${req.component} ${req.version}: the chunk index ${req.url} matches ${req.sha256} neither by its head nor as a whole file (SHA-256 of the ${whole ? 'file' : 'head'}: ${actual})`, { data: { component: req.component, url: req.url, expected: req.sha256, actual } });
  };
  /** An index for another archive is refused (right after its head when fetched piecewise). */
  const checkArchive = (named: { archiveSha256: string; archiveSize: number }) => {
    if (req.archive && (named.archiveSha256 !== req.archive.sha256 || (req.archive.size !== undefined && named.archiveSize !== req.archive.size))) {
      throw new ArchiveError('ERR_INDEX_MISMATCH', `Cannot install ${req.component} ${req.version}: the chunk index describes the archive ${named.archiveSha256} (${named.archiveSize} bytes), not the expected ${req.archive.sha256}`, { data: { component: req.component, expected: req.archive.sha256, actual: named.archiveSha256 } });
    }
  };
  /** A whole file, bound by its head's digest or by the file's own (an OCI layer descriptor's, `sha256sum` of the file). */
  const wholeFile = (file: Buffer): FetchedIndex => {
    if (indexDigest(file) !== req.sha256 && sha(file) !== req.sha256) throw mismatch(file, true);
    const index = decodeIndex(file);
    checkArchive(index);
    return { index, file, fetched, requests };
  };
  const known = knownParts(kept);
  const getWhole = async () => {
    const file = await source.whole(req.url, cap, signal);
    fetched += file.length;
    requests++;
    return wholeFile(file);
  };
  // Nothing kept to take parts from (a first install): the whole file in one request.
  if (known.size === 0) return await getWhole();
  let headBytes: Buffer;
  try {
    const prefix = await get(0, INDEX_PREFIX);
    const end = headEnd(prefix);
    if (end > cap) throw new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index ${req.url}: its head is ${end} bytes, over the index's ${cap}`, { data: { url: req.url } });
    headBytes = Buffer.concat([prefix, await get(INDEX_PREFIX, end)]);
  } catch (err) {
    if (signal.aborted || (err instanceof LanderError && !(err instanceof DownloadError))) throw err;
    // No ranges here, or no answer: the whole file, once (a source with mirrors tries them all), checked the same way.
    return await getWhole();
  }
  if (sha(headBytes) !== req.sha256) {
    // Not the head's digest: it may bind the whole file, which then cannot be checked piecewise; fetch the rest and check that.
    if (req.size !== undefined && req.size < headBytes.length) throw mismatch(headBytes, false);
    if (req.size !== undefined) return wholeFile(req.size === headBytes.length ? headBytes : Buffer.concat([headBytes, await get(headBytes.length, req.size)]));
    return await getWhole();
  }
  const head = parseHead(headBytes);
  checkArchive(head);
  if (head.fileSize > cap) throw new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index ${req.url}: its pages end at ${head.fileSize}, past the index's ${cap} bytes`, { data: { url: req.url } });
  const pages = await fill(head.pages, known, get, 'page');
  const leafList = leafParts(head, pages);
  const leaves = await fill(leafList, known, get, 'leaf');
  const file = Buffer.concat([headBytes, ...pages, ...leaves]);
  if (file.length > cap) throw new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index ${req.url}: it is ${file.length} bytes, over ${cap}`, { data: { url: req.url } });
  return { index: decodeIndex(file), file, fetched, requests };
}

/** The bytes of `parts`, kept ones from `known`, the others fetched in runs; each checked against its hash. */
async function fill(parts: readonly IndexPart[], known: ReadonlyMap<string, Buffer>, get: (start: number, end: number) => Promise<Buffer>, kind: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const got = new Map<number, Buffer>();
  let j = 0; // parts and runs are both in file order
  for (const run of planIndexRuns(parts, known)) {
    const b = await get(run.start, run.end);
    while (j < parts.length && parts[j]!.offset < run.start) j++;
    for (; j < parts.length && parts[j]!.offset < run.end; j++) got.set(parts[j]!.offset, b.subarray(parts[j]!.offset - run.start, parts[j]!.offset - run.start + parts[j]!.length));
  }
  parts.forEach((p, i) => {
    const b = known.get(p.sha256) ?? got.get(p.offset)!;
    if (sha(b) !== p.sha256) throw new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index: ${kind} ${i} (bytes ${p.offset}-${p.offset + p.length - 1}) does not match its hash`, { data: { [kind]: i, offset: p.offset } });
    out.push(b);
  });
  return out;
}
