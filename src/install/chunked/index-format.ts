/**
 * The chunk index of a chunked `.tar.gz` (pure): encode, decode, and the
 * structural checks a decoded index must pass before anything trusts it.
 * README "Chunked archives and their index" documents the byte layout; this
 * file is its reference implementation.
 *
 * Format 2 is a small hash tree so a client fetches only what changed: a
 * head (bound by its SHA-256 where the archive's digest is bound) lists the
 * pages' lengths and hashes, each page its leaves' lengths and hashes, and
 * the leaves hold the member and entry records. A client that keeps the
 * previous version's index takes every page and leaf whose hash it already
 * holds from there and fetches the rest by Range (src/install/chunked/index-fetch.ts).
 */
import { createHash } from 'node:crypto';
import { BLOCK, paddedSize, type IndexEntryType } from './tar-header.ts';
import { indexError as bad, Reader, Writer } from './index-codec.ts';

export const INDEX_MAGIC = 'LNDRIDX2';
/** The magic and the head's length (u32 big-endian). */
export const INDEX_PREFIX = 12;
/** Caps on what a decoded index may declare (every loop has a cap). */
export const INDEX_LIMITS = { maxMembers: 10_000_000, maxEntries: 2_000_000, maxBytes: 256 << 20, maxHead: 64 << 20 };
/** The writer's grouping: a leaf ends after a record whose hash has its low 2 bits zero (about 4 records), a page after a leaf whose hash's second byte is a multiple of 8 (about 8 leaves). */
const LEAF_SPAN = 4;
const LEAF_MAX = 64;
const PAGE_SPAN = 8;
const PAGE_MAX = 256;

export interface IndexMember {
  /** Offset and length in the `.tar.gz`. */
  gzOffset: number;
  gzLength: number;
  /** Offset and length in the tar stream. */
  tarOffset: number;
  tarLength: number;
  /**
   * SHA-256 (hex) of the member's uncompressed bytes; `''` for a metadata
   * member (no file data: headers, padding, the end marker), which an
   * install never fetches since the index carries what it says.
   */
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

/** A page or a leaf: where it lies in the index file and the SHA-256 of its bytes. */
export interface IndexPart {
  offset: number;
  length: number;
  sha256: string;
}

/** What the head says: the archive it describes, the counts, and the pages. */
export interface IndexHead {
  archiveSize: number;
  archiveSha256: string;
  tarSize: number;
  avgChunk: number;
  members: number;
  entries: number;
  leaves: number;
  /** Bytes of the magic, the length and the head: the span the bound digest covers. */
  headEnd: number;
  pages: IndexPart[];
  /** The index file's whole size. */
  fileSize: number;
}

const TYPES: IndexEntryType[] = ['file', 'directory', 'symlink', 'link'];
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** The SHA-256 (hex) that binds an index file: of its magic, head length and head. */
export function indexDigest(file: Buffer): string {
  return createHash('sha256').update(file.subarray(0, headEnd(file))).digest('hex');
}

/** The end of the head from the file's first 12 bytes. @throws ArchiveError `ERR_INDEX_INVALID` */
export function headEnd(prefix: Buffer): number {
  if (prefix.length >= 2 && prefix[0] === 0x1f && prefix[1] === 0x8b) throw bad('it is a format 1 index (gzip, LNDRIDX1), which this lander no longer reads; repack the archive with this lander to get a format 2 index');
  if (prefix.length < INDEX_PREFIX || prefix.subarray(0, 8).toString('latin1') !== INDEX_MAGIC) throw bad(`it does not start with ${INDEX_MAGIC} (format 2)`);
  const n = prefix.readUInt32BE(8);
  if (n === 0 || n > INDEX_LIMITS.maxHead) throw bad(`its head is ${n} bytes`);
  return INDEX_PREFIX + n;
}

/** Decodes the head (`b` holds at least the bytes up to its end). */
export function parseHead(b: Buffer): IndexHead {
  const end = headEnd(b);
  if (b.length < end) throw bad(`the head ends early (${b.length} of ${end} bytes)`);
  const r = new Reader(b.subarray(INDEX_PREFIX, end), 'the head');
  const archiveSize = r.varint();
  const archiveSha256 = r.hex32();
  const tarSize = r.varint();
  const avgChunk = r.varint();
  const members = r.varint();
  const entries = r.varint();
  const leaves = r.varint();
  const nPages = r.varint();
  if (members === 0 || members > INDEX_LIMITS.maxMembers || entries > INDEX_LIMITS.maxEntries) throw bad(`it lists ${members} members and ${entries} entries`);
  if (nPages === 0 || nPages > leaves || leaves > members + entries) throw bad(`it lists ${nPages} pages and ${leaves} leaves for ${members + entries} records`);
  const pages: IndexPart[] = [];
  let at = end;
  for (let i = 0; i < nPages; i++) {
    const length = r.varint();
    if (length === 0 || at + length > INDEX_LIMITS.maxBytes) throw bad(`page ${i} is ${length} bytes`);
    pages.push({ offset: at, length, sha256: r.hex32() });
    at += length;
  }
  if (!r.end()) throw bad('the head has bytes after its last page');
  return { archiveSize, archiveSha256, tarSize, avgChunk, members, entries, leaves, headEnd: end, pages, fileSize: at };
}

/** The leaves listed by the pages (their bytes, in order, each checked against the head). */
export function leafParts(head: IndexHead, pages: readonly Buffer[]): IndexPart[] {
  const out: IndexPart[] = [];
  let at = head.fileSize;
  pages.forEach((p, i) => {
    if (!sha(p).equals(Buffer.from(head.pages[i]!.sha256, 'hex'))) throw bad(`page ${i} does not match its hash in the head`, { page: i });
    const r = new Reader(p, `page ${i}`);
    const n = r.varint();
    if (n === 0 || out.length + n > head.leaves) throw bad(`page ${i} lists ${n} leaves`);
    for (let j = 0; j < n; j++) {
      const length = r.varint();
      if (length === 0 || at + length > INDEX_LIMITS.maxBytes) throw bad(`a leaf of page ${i} is ${length} bytes`);
      out.push({ offset: at, length, sha256: r.hex32() });
      at += length;
    }
    if (!r.end()) throw bad(`page ${i} has bytes after its last leaf`);
  });
  if (out.length !== head.leaves) throw bad(`its pages list ${out.length} leaves, the head ${head.leaves}`);
  return out;
}

/** The member and entry records in tar order (a member first where both start), grouped into leaves. */
function leavesOf(index: ChunkIndex): Buffer[] {
  const leaves: Buffer[] = [];
  const ms = index.members;
  const es = index.entries;
  let w = new Writer();
  let inLeaf = 0;
  let prev = ''; // name prefixes are shared only inside a leaf, so each leaf decodes alone
  for (let i = 0, j = 0; i < ms.length || j < es.length;) {
    const from = w.length;
    if (j >= es.length || (i < ms.length && ms[i]!.tarOffset <= es[j]!.headerOffset)) {
      const m = ms[i++]!;
      w.varint(m.sha256 === '' ? 2 : 0);
      w.varint(m.gzLength);
      w.varint(m.tarLength);
      if (m.sha256 !== '') w.hex32(m.sha256);
    } else {
      const e = es[j++]!;
      w.varint(1);
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
    inLeaf++;
    const leaf = w.done();
    // Content-defined: the cut depends on the record alone, so an edit regroups only the leaves around it.
    if ((sha(leaf.subarray(from))[0]! & (LEAF_SPAN - 1)) === 0 || inLeaf >= LEAF_MAX) {
      leaves.push(leaf);
      w = new Writer();
      inLeaf = 0;
      prev = '';
    } else {
      w = new Writer();
      w.bytes(leaf);
    }
  }
  if (inLeaf > 0) leaves.push(w.done());
  return leaves;
}

/** The index file's bytes (README "Chunked archives and their index") for `index`. */
export function encodeIndex(index: ChunkIndex): Buffer {
  checkMetadataMembers(index.members, index.entries);
  const leaves = leavesOf(index);
  const pages: Buffer[] = [];
  let page = new Writer();
  let inPage = 0;
  const flush = () => {
    const body = page.done();
    const w = new Writer();
    w.varint(inPage);
    w.bytes(body);
    pages.push(w.done());
    page = new Writer();
    inPage = 0;
  };
  for (const leaf of leaves) {
    const h = sha(leaf);
    page.varint(leaf.length);
    page.bytes(h);
    inPage++;
    if (h[1]! % PAGE_SPAN === 0 || inPage >= PAGE_MAX) flush();
  }
  if (inPage > 0) flush();
  const head = new Writer();
  head.varint(index.archiveSize);
  head.hex32(index.archiveSha256);
  head.varint(index.tarSize);
  head.varint(index.avgChunk);
  head.varint(index.members.length);
  head.varint(index.entries.length);
  head.varint(leaves.length);
  head.varint(pages.length);
  for (const p of pages) {
    head.varint(p.length);
    head.bytes(sha(p));
  }
  const hb = head.done();
  const prefix = Buffer.alloc(INDEX_PREFIX);
  prefix.write(INDEX_MAGIC, 0, 'latin1');
  prefix.writeUInt32BE(hb.length, 8);
  return Buffer.concat([prefix, hb, ...pages, ...leaves]);
}

/**
 * Decodes and checks a whole index file: every page and leaf against the
 * hashes above it, bounds on every field, members that tile the archive and
 * the tar stream, entries that tile the tar stream from offset 0 with every
 * header group inside one member, and at least the two zero blocks of the
 * end-of-archive marker after the last entry. The head's own digest is the
 * caller's to check (indexDigest) against the bound one.
 *
 * @throws ArchiveError `ERR_INDEX_INVALID`
 */
export function decodeIndex(file: Buffer): ChunkIndex {
  if (file.length > INDEX_LIMITS.maxBytes) throw bad(`it is ${file.length} bytes`);
  const head = parseHead(file);
  const pageBytes = head.pages.map((p) => file.subarray(p.offset, p.offset + p.length));
  if (head.fileSize > file.length) throw bad(`its pages end at ${head.fileSize}, past its ${file.length} bytes`);
  const leaves = leafParts(head, pageBytes);
  const end = leaves.length > 0 ? leaves[leaves.length - 1]!.offset + leaves[leaves.length - 1]!.length : head.fileSize;
  if (end !== file.length) throw bad(`its leaves end at ${end}, not at its ${file.length} bytes`);
  const members: IndexMember[] = [];
  const entries: IndexEntry[] = [];
  let gz = 0;
  let tarPos = 0;
  let at = 0;
  let m = 0;
  for (let li = 0; li < leaves.length; li++) {
    const l = leaves[li]!;
    const body = file.subarray(l.offset, l.offset + l.length);
    if (!sha(body).equals(Buffer.from(l.sha256, 'hex'))) throw bad(`leaf ${li} does not match its hash in its page`, { leaf: li });
    const r = new Reader(body, `leaf ${li}`);
    let prev = '';
    while (!r.end()) {
      const tag = r.varint();
      if (tag === 0 || tag === 2) {
        const gzLength = r.varint();
        const tarLength = r.varint();
        if (gzLength < 18 || tarLength === 0 || members.length >= head.members) throw bad(`member ${members.length} has length ${gzLength} in the archive and ${tarLength} in the tar stream`);
        members.push({ gzOffset: gz, gzLength, tarOffset: tarPos, tarLength, sha256: tag === 0 ? r.hex32() : '' });
        gz += gzLength;
        tarPos += tarLength;
        continue;
      }
      if (tag !== 1 || entries.length >= head.entries) throw bad(`leaf ${li} has a record of kind ${tag}`);
      const i = entries.length;
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
      // Records run in tar order, so the member holding this header is already read.
      while (m < members.length && members[m]!.tarOffset + members[m]!.tarLength <= at) m++;
      const holder = members[m];
      if (!holder || e.dataOffset > holder.tarOffset + holder.tarLength) throw bad(`the headers of entry ${JSON.stringify(name)} are not inside one member`, { entry: name });
      at = e.dataOffset + paddedSize(size);
      if (at > head.tarSize) throw bad(`entry ${JSON.stringify(name)} ends at ${at}, past the tar stream's ${head.tarSize} bytes`, { entry: name });
      entries.push(e);
      prev = name;
    }
  }
  if (members.length !== head.members || entries.length !== head.entries) throw bad(`its leaves hold ${members.length} members and ${entries.length} entries, the head says ${head.members} and ${head.entries}`);
  if (gz !== head.archiveSize || tarPos !== head.tarSize) throw bad(`its members cover ${gz} archive bytes and ${tarPos} tar bytes, not ${head.archiveSize} and ${head.tarSize}`);
  if (head.tarSize - at < 2 * BLOCK) throw bad(`the tar stream has ${head.tarSize - at} bytes after its last entry, not the end-of-archive marker`);
  checkMetadataMembers(members, entries);
  return { archiveSize: head.archiveSize, archiveSha256: head.archiveSha256, tarSize: head.tarSize, avgChunk: head.avgChunk, members, entries };
}

/** A member without a hash must hold no file data (both lists in tar order). @throws ArchiveError `ERR_INDEX_INVALID` */
function checkMetadataMembers(members: readonly IndexMember[], entries: readonly IndexEntry[]): void {
  let j = 0;
  members.forEach((mem, i) => {
    if (mem.sha256 !== '') return;
    const a = mem.tarOffset;
    const b = a + mem.tarLength;
    while (j < entries.length && entries[j]!.dataOffset + entries[j]!.size <= a) j++;
    for (let k = j; k < entries.length && entries[k]!.dataOffset < b; k++) {
      const e = entries[k]!;
      if (e.size > 0 && e.dataOffset + e.size > a) throw bad(`member ${i} has no hash but holds data of ${JSON.stringify(e.name)}`, { member: i, entry: e.name });
    }
  });
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
