/**
 * Reads the decompressed tar stream ahead of tar-stream, header by header, as
 * GNU tar reads it, and decides what tar-stream may see:
 *
 * - every header's checksum, numeric fields, pax records and name bytes are
 *   checked strictly; what GNU tar and tar-stream could read differently is
 *   refused (not UTF-8, a malformed pax record, a sparse map, a v7 header);
 * - an over-limit run of pax/long-name headers is refused on its header
 *   block, before its body is buffered (HOSTILE-INPUT #17);
 * - an empty pax header is dropped (tar-stream trips on it; it means nothing);
 * - the first zero block ends the archive, as in GNU tar: nothing after it
 *   reaches tar-stream (#29), so nothing `tar -tzf` does not list is installed.
 *
 * Each real entry's header is queued as a `GateEntry`, the reading of record:
 * the extractor takes it for tar-stream's entry at the same offset.
 */
import {
  BLOCK, cField, checksumOk, headerFormat, isZeroBlock, numericField, padded, parsePax, showBytes, sparseFormat, strictUtf8, typeName, type TarFormat,
} from './tar-headers.ts';

/** One real entry (not a pax or long-name header) as GNU tar reads it. */
export interface GateEntry {
  /** Where its header block starts in the bytes handed on (tar-stream's `offset`). */
  offset: number;
  /** The raw type flag, one character. */
  flag: string;
  /** pax `path`, else a GNU long name, else ustar prefix + name; valid UTF-8. */
  name: string;
  /** pax `linkpath`, else a GNU long link name, else the header's link field. */
  linkname: string;
  /** Body bytes (pax `size` wins). */
  size: number;
  mode: number;
  format: TarFormat;
}

/** A refusal from the gate: a code, the entry it concerns (if any), and why. */
export class GateRefusal extends Error {
  readonly code: 'ERR_ARCHIVE_CORRUPT' | 'ERR_ARCHIVE_PATH' | 'ERR_ARCHIVE_ENTRY_TYPE' | 'ERR_ARCHIVE_FORMAT' | 'ERR_ARCHIVE_LIMIT';
  readonly entry: string | undefined;
  readonly reason: string;
  readonly data: Record<string, unknown>;
  constructor(code: GateRefusal['code'], entry: string | undefined, reason: string, data: Record<string, unknown> = {}) {
    super(`${entry === undefined ? 'the archive' : `entry ${JSON.stringify(entry)}`} ${reason}`);
    this.code = code;
    this.entry = entry;
    this.reason = reason;
    this.data = data;
  }
}

const META = new Set(['x', 'g', 'L', 'K']);
/** pax records GNU tar decodes as numbers (and fails on otherwise); `size` is checked with the entry. */
const PAX_TIMES = ['atime', 'ctime', 'mtime'];
const PAX_INTS = ['uid', 'gid', 'SCHILY.devmajor', 'SCHILY.devminor', 'SCHILY.dev', 'SCHILY.ino', 'SCHILY.nlink'];

function badPaxValue(r: ReadonlyMap<string, Buffer>): string | undefined {
  for (const k of PAX_TIMES) {
    const v = r.get(k);
    if (v !== undefined && !/^-?[0-9]{1,20}(\.[0-9]{1,20})?$/.test(v.toString('latin1'))) return k;
  }
  for (const k of PAX_INTS) {
    const v = r.get(k);
    if (v !== undefined && !/^[0-9]{1,19}$/.test(v.toString('latin1'))) return k;
  }
  return undefined;
}

interface Pending {
  pax?: Map<string, Buffer>;
  longName?: Buffer;
  longLink?: Buffer;
  /** The name field of the first meta header, for messages. */
  first?: string;
}

export class TarGate {
  readonly #maxMeta: number;
  readonly #queue: GateEntry[] = [];
  #header = Buffer.alloc(BLOCK);
  #fill = 0;
  /** Body bytes (with padding) of a real entry still to pass through. */
  #body = 0;
  /** A meta header being read: its header block, and its body so far. */
  #meta: { flag: string; name: string; header: Buffer; parts: Buffer[]; left: number; size: number } | undefined;
  #metaRun = 0;
  #pending: Pending = {};
  #out = 0;
  #ended = false;
  /** The last real entry's name, so a refusal without one can say where it happened. */
  last: string | undefined;

  constructor(maxMetaBytes: number) {
    this.#maxMeta = maxMetaBytes;
  }

  /** The queued entry whose header starts at `offset`, removed from the queue. */
  take(offset: number): GateEntry | undefined {
    const e = this.#queue.shift();
    return e && e.offset === offset ? e : undefined;
  }

  /** The oldest queued entry, whatever its offset, removed from the queue. */
  shift(): GateEntry | undefined {
    return this.#queue.shift();
  }

  /** True once the end-of-archive block was read: what follows is ignored. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Feeds decompressed bytes in order; returns the bytes to hand on. Throws a GateRefusal. */
  feed(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const emit = (b: Buffer) => {
      if (b.length === 0) return;
      out.push(b);
      this.#out += b.length;
    };
    let off = 0;
    while (off < chunk.length && !this.#ended) {
      if (this.#body > 0) {
        const n = Math.min(this.#body, chunk.length - off);
        emit(chunk.subarray(off, off + n));
        this.#body -= n;
        off += n;
        continue;
      }
      if (this.#meta && this.#meta.left > 0) {
        const n = Math.min(this.#meta.left, chunk.length - off);
        this.#meta.parts.push(Buffer.from(chunk.subarray(off, off + n)));
        this.#meta.left -= n;
        off += n;
        if (this.#meta.left === 0) for (const b of this.#endMeta()) emit(b);
        continue;
      }
      const n = Math.min(BLOCK - this.#fill, chunk.length - off);
      chunk.copy(this.#header, this.#fill, off, off + n);
      this.#fill += n;
      off += n;
      if (this.#fill < BLOCK) break;
      this.#fill = 0;
      const h = Buffer.from(this.#header);
      const pass = this.#onHeader(h);
      if (pass) emit(h);
    }
    return out;
  }

  /** At the end of the input: throws when it stopped inside a header or a body. */
  end(): void {
    if (this.#ended) return;
    if (this.#fill > 0 || this.#body > 0 || this.#meta) {
      throw new GateRefusal('ERR_ARCHIVE_CORRUPT', this.#meta?.name ?? this.last, 'is cut short: the tar stream ends inside it (truncated archive)');
    }
    if (this.#pending.first !== undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', this.#pending.first, 'is a pax or long-name header with no entry after it');
  }

  #onHeader(h: Buffer): boolean {
    if (isZeroBlock(h)) {
      if (this.#pending.first !== undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', this.#pending.first, 'is a pax or long-name header with no entry after it');
      this.#ended = true;
      return false;
    }
    const fieldName = showBytes(cField(h, 0, 100));
    if (!checksumOk(h)) {
      throw new GateRefusal('ERR_ARCHIVE_CORRUPT', this.last, `${this.last === undefined ? 'starts with' : 'is followed by'} a block that is not a valid tar header (bad checksum): the archive is corrupt`);
    }
    const format = headerFormat(h);
    if (format === 'v7') throw new GateRefusal('ERR_ARCHIVE_FORMAT', fieldName, 'has a pre-POSIX (v7) tar header, a format lander does not read; repack the archive as ustar, GNU or pax (GNU tar and Python tarfile do by default)', { format: 'v7' });
    const flag = String.fromCharCode(h[156]!);
    const size = numericField(h.subarray(124, 136));
    if (META.has(flag)) {
      if (size === undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', fieldName, `(a ${typeName(flag)}) has an unreadable size field`);
      this.#metaRun += BLOCK + padded(size);
      if (this.#metaRun > this.#maxMeta) {
        throw new GateRefusal('ERR_ARCHIVE_LIMIT', fieldName, `(${flag === 'x' || flag === 'g' ? 'a pax header' : 'a GNU long name'} ${this.last === undefined ? 'at the start' : `after entry ${JSON.stringify(this.last)}`}) makes ${this.#metaRun} bytes of pax/long-name headers, over limits.maxMetaEntrySize (${this.#maxMeta}); refused before reading it`, {
          limit: 'maxMetaEntrySize', value: this.#metaRun, max: this.#maxMeta,
        });
      }
      this.#pending.first ??= fieldName;
      this.#meta = { flag, name: fieldName, header: h, parts: [], left: padded(size), size };
      if (size === 0) return this.#emptyMeta();
      return false; // handed on with its body once it is checked
    }
    this.#metaRun = 0;
    const entry = this.#entry(h, flag, format, size, fieldName);
    this.#queue.push({ ...entry, offset: this.#out });
    this.last = entry.name;
    this.#body = padded(entry.size);
    return true;
  }

  /** A meta header with no body: an empty pax header means nothing and is dropped; an empty long name is refused. */
  #emptyMeta(): boolean {
    const m = this.#meta!;
    this.#meta = undefined;
    if (m.flag === 'x' || m.flag === 'g') {
      if (this.#pending.first === m.name && !this.#pending.pax && !this.#pending.longName && !this.#pending.longLink) this.#pending.first = undefined;
      return false;
    }
    throw new GateRefusal('ERR_ARCHIVE_CORRUPT', m.name, `is an empty ${typeName(m.flag)}`);
  }

  #endMeta(): Buffer[] {
    const m = this.#meta!;
    this.#meta = undefined;
    const body = Buffer.concat(m.parts).subarray(0, m.size);
    const p = this.#pending;
    if (m.flag === 'L' || m.flag === 'K') {
      if ((m.flag === 'L' ? p.longName : p.longLink) !== undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', m.name, `is a second ${typeName(m.flag)} in a row for one entry`);
      const nul = body.indexOf(0);
      // GNU tar reads a long name on past its size into the block's padding until a NUL: without one, the readers disagree.
      if (nul === -1) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', m.name, `is a ${typeName(m.flag)} that does not end with a NUL byte within its ${m.size} bytes`);
      const value = body.subarray(0, nul);
      if (m.flag === 'L') p.longName = value;
      else p.longLink = value;
    } else {
      const parsed = parsePax(body);
      if (!parsed.ok) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', m.name, `is a malformed pax header: ${parsed.reason}`);
      const r = parsed.records;
      const bad = badPaxValue(r);
      if (bad) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', m.name, `is a pax header whose "${bad}" record is not a number (GNU tar refuses it)`);
      const sparse = sparseFormat(r);
      if (sparse) {
        const name = r.get('GNU.sparse.name') ?? r.get('path');
        throw new GateRefusal('ERR_ARCHIVE_ENTRY_TYPE', name ? showBytes(name) : m.name, `is a sparse file (GNU.sparse format ${sparse}); lander does not extract sparse files: repack without --sparse`, { type: 'sparse', sparseFormat: sparse });
      }
      if (m.flag === 'g') {
        for (const k of ['path', 'linkpath', 'size']) {
          const v = r.get(k);
          if (v !== undefined) throw new GateRefusal(k === 'size' ? 'ERR_ARCHIVE_CORRUPT' : 'ERR_ARCHIVE_PATH', k === 'size' ? m.name : showBytes(v), `is set as "${k}" by a global pax header (${m.name}) for every entry after it; lander refuses that`);
        }
        if (p.first === m.name && !p.pax && !p.longName && !p.longLink) p.first = undefined; // a global header belongs to no one entry
      } else {
        if (p.pax) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', m.name, 'is a second pax header in a row for one entry');
        p.pax = r;
      }
    }
    return [m.header, Buffer.concat(m.parts)];
  }

  #entry(h: Buffer, flag: string, format: TarFormat, headerSize: number | undefined, fieldName: string): Omit<GateEntry, 'offset'> {
    const p = this.#pending;
    this.#pending = {};
    const pax = p.pax;
    const paxPath = pax?.get('path');
    if (paxPath !== undefined && p.longName !== undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', fieldName, 'has both a GNU long name and a pax path');
    let nameBytes: Buffer;
    if (paxPath !== undefined) nameBytes = paxPath;
    else if (p.longName !== undefined) nameBytes = p.longName;
    else {
      nameBytes = cField(h, 0, 100);
      const prefix = format === 'ustar' && h[345] !== 0 ? cField(h, 345, 155) : undefined;
      if (prefix) nameBytes = Buffer.concat([prefix, Buffer.from('/'), nameBytes]);
    }
    const linkBytes = pax?.get('linkpath') ?? p.longLink ?? cField(h, 157, 100);
    const name = this.#text(nameBytes, 'name');
    // Only links have a target GNU tar reads; a file's stray link field is ignored by both readers.
    const linkname = flag === '1' || flag === '2' ? this.#text(linkBytes, 'link target', name) : '';
    const paxSize = pax?.get('size');
    let size = headerSize;
    if (paxSize !== undefined) {
      const s = paxSize.toString('latin1');
      if (!/^(0|[1-9][0-9]{0,15})$/.test(s) || !Number.isSafeInteger(Number(s))) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', name, `has a pax size record that is not a number (${JSON.stringify(showBytes(paxSize).slice(0, 40))})`);
      size = Number(s);
    }
    if (size === undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', name, 'has an unreadable size field');
    const mode = numericField(h.subarray(100, 108));
    if (mode === undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', name, 'has an unreadable mode field');
    for (const [field, off, len, key] of [['uid', 108, 8, 'uid'], ['gid', 116, 8, 'gid'], ['mtime', 136, 12, 'mtime']] as const) {
      if (!pax?.has(key) && numericField(h.subarray(off, off + len)) === undefined) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', name, `has an unreadable ${field} field`);
    }
    // tar-stream (and GNU tar) skip no body after a folder, and hard links or symlinks with one are not what any tool writes.
    if ((flag === '5' || flag === '1' || flag === '2') && size > 0) throw new GateRefusal('ERR_ARCHIVE_CORRUPT', name, `is a ${typeName(flag)} with a body of ${size} bytes`);
    return { flag, name, linkname, size: flag === '5' ? 0 : size, mode, format };
  }

  /** Name bytes as text, or a refusal saying they are not UTF-8 (never rewritten to U+FFFD, #27). */
  #text(b: Buffer, what: 'name' | 'link target', entry?: string): string {
    const s = strictUtf8(b);
    if (s === undefined) {
      throw new GateRefusal('ERR_ARCHIVE_PATH', entry ?? showBytes(b), `has a ${what} that is not valid UTF-8 (${JSON.stringify(showBytes(b))}); lander installs names byte for byte or not at all`, { encoding: 'not-utf8' });
    }
    if (s.includes('\0')) throw new GateRefusal('ERR_ARCHIVE_PATH', entry ?? showBytes(b), `has a NUL byte in its ${what}`);
    return s;
  }
}
