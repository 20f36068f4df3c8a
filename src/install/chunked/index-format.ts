/**
 * The chunk index of a chunked `.tar.gz` (pure): encode, decode, and the
 * structural checks a decoded index must pass before anything trusts it.
 * README "Chunked archives and their index" documents the byte layout; this
 * file is its reference implementation. The index is a standalone file
 * (gzip of the layout below), so it can travel as a sidecar, a manifest
 * entry or a second OCI layer.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { ArchiveError } from '../../base/errors.ts';
import { BLOCK, paddedSize, type IndexEntryType } from './tar-header.ts';

export const INDEX_MAGIC = 'LNDRIDX1';
/** Caps on what a decoded index may declare (every loop has a cap). */
export const INDEX_LIMITS = { maxMembers: 10_000_000, maxEntries: 2_000_000, maxBytes: 256 << 20 };

export interface IndexMember {
  /** Offset and length in the `.tar.gz`. */
  gzOffset: number;
  gzLength: number;
  /** Offset and length in the tar stream. */
  tarOffset: number;
  tarLength: number;
  /** SHA-256 (hex) of the member's uncompressed bytes. */
  sha256: string;
}

export interface IndexEntry {
  /** The name as the tar header gives it (pax `path` applied); folders end in `/`. */
  name: string;
  type: IndexEntryType;
  /** Mode bits from the header. */
  mode: number;
  /** Data bytes (0 for all but files). */
  size: number;
  linkname?: string;
  /** Where the entry's first header (pax or long-name included) starts in the tar stream. */
  headerOffset: number;
  /** Where its data starts: headerOffset + the header blocks. */
  dataOffset: number;
  /** SHA-256 (hex) of a file's content. */
  sha256?: string;
}

export interface ChunkIndex {
  archiveSize: number;
  archiveSha256: string;
  tarSize: number;
  /** The chunker's average, for information. */
  avgChunk: number;
  members: IndexMember[];
  entries: IndexEntry[];
}

const TYPES: IndexEntryType[] = ['file', 'directory', 'symlink', 'link'];

class Writer {
  private parts: Buffer[] = [];
  private cur = Buffer.allocUnsafe(1 << 16);
  private pos = 0;
  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.parts.push(this.cur.subarray(0, this.pos));
    this.cur = Buffer.allocUnsafe(Math.max(1 << 16, n));
    this.pos = 0;
  }
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Cannot encode the index: ${v} is not a non-negative integer`);
    this.room(8);
    while (v >= 0x80) {
      this.cur[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.cur[this.pos++] = v;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
  }
  hex32(h: string): void {
    this.bytes(Buffer.from(h, 'hex'));
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.bytes(b);
  }
  done(): Buffer {
    return Buffer.concat([...this.parts, this.cur.subarray(0, this.pos)]);
  }
}

class Reader {
  pos = 0;
  private readonly b: Buffer;
  constructor(b: Buffer) {
    this.b = b;
  }
  private need(n: number): void {
    if (this.pos + n > this.b.length) throw bad(`it ends early (at byte ${this.pos})`);
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      this.need(1);
      const c = this.b[this.pos++]!;
      v += (c & 0x7f) * mul;
      if (!(c & 0x80)) {
        if (!Number.isSafeInteger(v)) break;
        return v;
      }
      mul *= 0x80;
    }
    throw bad(`a number at byte ${this.pos} is too large`);
  }
  bytes(n: number): Buffer {
    this.need(n);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  hex32(): string {
    return this.bytes(32).toString('hex');
  }
  str(): string {
    return this.bytes(this.varint()).toString('utf8');
  }
  end(): boolean {
    return this.pos === this.b.length;
  }
}

function bad(why: string, data: Record<string, unknown> = {}): ArchiveError {
  return new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index: ${why}`, { data });
}

/** The index file's bytes (gzip of the layout) for `index`. */
export function encodeIndex(index: ChunkIndex): Buffer {
  const w = new Writer();
  w.bytes(Buffer.from(INDEX_MAGIC, 'latin1'));
  w.varint(index.archiveSize);
  w.hex32(index.archiveSha256);
  w.varint(index.tarSize);
  w.varint(index.avgChunk);
  w.varint(index.members.length);
  for (const m of index.members) {
    w.varint(m.gzLength);
    w.varint(m.tarLength);
    w.hex32(m.sha256);
  }
  w.varint(index.entries.length);
  let prev = '';
  for (const e of index.entries) {
    w.varint(TYPES.indexOf(e.type));
    w.varint(e.mode);
    let shared = 0;
    while (shared < prev.length && shared < e.name.length && prev.charCodeAt(shared) === e.name.charCodeAt(shared)) shared++;
    // Shared prefixes are counted in UTF-16 units and never split a surrogate pair.
    if (shared > 0 && shared < e.name.length && e.name.charCodeAt(shared) >= 0xdc00 && e.name.charCodeAt(shared) <= 0xdfff) shared--;
    w.varint(shared);
    w.str(e.name.slice(shared));
    w.varint((e.dataOffset - e.headerOffset) / BLOCK);
    w.varint(e.size);
    if (e.type === 'file') w.hex32(e.sha256!);
    if (e.type === 'symlink' || e.type === 'link') w.str(e.linkname ?? '');
    prev = e.name;
  }
  return gzipSync(w.done(), { level: 9 });
}

/**
 * Decodes and checks an index file: bounds on every field, members that
 * tile the archive and the tar stream, entries that tile the tar stream
 * from offset 0 with every header group inside one member, and at least the
 * two zero blocks of the end-of-archive marker after the last entry.
 *
 * @throws ArchiveError `ERR_INDEX_INVALID`
 */
export function decodeIndex(file: Buffer): ChunkIndex {
  let raw: Buffer;
  try {
    raw = gunzipSync(file, { maxOutputLength: INDEX_LIMITS.maxBytes });
  } catch (cause) {
    throw new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index: it does not decompress (${(cause as Error).message})`, { cause });
  }
  const r = new Reader(raw);
  if (r.bytes(8).toString('latin1') !== INDEX_MAGIC) throw bad(`it does not start with ${INDEX_MAGIC}`);
  const archiveSize = r.varint();
  const archiveSha256 = r.hex32();
  const tarSize = r.varint();
  const avgChunk = r.varint();
  const nMembers = r.varint();
  if (nMembers === 0 || nMembers > INDEX_LIMITS.maxMembers) throw bad(`it lists ${nMembers} members`);
  const members: IndexMember[] = [];
  let gz = 0;
  let tarPos = 0;
  for (let i = 0; i < nMembers; i++) {
    const gzLength = r.varint();
    const tarLength = r.varint();
    if (gzLength < 18 || tarLength === 0) throw bad(`member ${i} has length ${gzLength} in the archive and ${tarLength} in the tar stream`);
    members.push({ gzOffset: gz, gzLength, tarOffset: tarPos, tarLength, sha256: r.hex32() });
    gz += gzLength;
    tarPos += tarLength;
  }
  if (gz !== archiveSize || tarPos !== tarSize) throw bad(`its members cover ${gz} archive bytes and ${tarPos} tar bytes, not ${archiveSize} and ${tarSize}`);
  const nEntries = r.varint();
  if (nEntries > INDEX_LIMITS.maxEntries) throw bad(`it lists ${nEntries} entries`);
  const entries: IndexEntry[] = [];
  let prev = '';
  let at = 0;
  let m = 0;
  for (let i = 0; i < nEntries; i++) {
    const t = r.varint();
    const type = TYPES[t];
    if (!type) throw bad(`entry ${i} has the unknown type ${t}`);
    const mode = r.varint();
    const shared = r.varint();
    if (shared > prev.length) throw bad(`entry ${i} shares ${shared} characters with a shorter name`);
    const name = prev.slice(0, shared) + r.str();
    const blocks = r.varint();
    const size = r.varint();
    if (blocks === 0 || (type !== 'file' && size !== 0)) throw bad(`entry ${JSON.stringify(name)} has ${blocks} header blocks and size ${size}`, { entry: name });
    const e: IndexEntry = { name, type, mode, size, headerOffset: at, dataOffset: at + blocks * BLOCK };
    if (type === 'file') e.sha256 = r.hex32();
    if (type === 'symlink' || type === 'link') e.linkname = r.str();
    while (m < members.length && members[m]!.tarOffset + members[m]!.tarLength <= at) m++;
    const holder = members[m];
    if (!holder || e.dataOffset > holder.tarOffset + holder.tarLength) throw bad(`the headers of entry ${JSON.stringify(name)} are not inside one member`, { entry: name });
    at = e.dataOffset + paddedSize(size);
    if (at > tarSize) throw bad(`entry ${JSON.stringify(name)} ends at ${at}, past the tar stream's ${tarSize} bytes`, { entry: name });
    entries.push(e);
    prev = name;
  }
  if (tarSize - at < 2 * BLOCK) throw bad(`the tar stream has ${tarSize - at} bytes after its last entry, not the end-of-archive marker`);
  if (!r.end()) throw bad('it has bytes after its last entry');
  return { archiveSize, archiveSha256, tarSize, avgChunk, members, entries };
}

/** Index of the member holding tar offset `at` (binary search over tiled members). */
export function memberAt(members: readonly IndexMember[], at: number): number {
  let lo = 0;
  let hi = members.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (members[mid]!.tarOffset <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
