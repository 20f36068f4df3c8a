/**
 * Minimal tar header reading (pure), for the chunked archive paths: the
 * packer's stream scanner and the installer's check that each fetched
 * member's headers say what the index says. Reads ustar/GNU headers and the
 * pax `path`, `linkpath` and `size` records, the shapes `lander pack` writes
 * (tar-stream's encoder); anything else is reported, not guessed.
 */

export const BLOCK = 512;

export interface RawHeader {
  /** ustar name with its prefix joined. */
  name: string;
  /** The type flag character ('0', '5', '2', 'x', ...); '\0' is a file. */
  flag: string;
  mode: number;
  size: number;
  linkname: string;
}

function cstr(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return Buffer.from(b.buffer, b.byteOffset + off, end - off).toString('utf8');
}

function num(b: Uint8Array, off: number, len: number): number {
  // GNU base-256 for values that do not fit octal (sizes of 8 GiB and over).
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i]!;
    return v;
  }
  const s = cstr(b, off, len).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

export function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** One 512-byte header, or undefined when its checksum is wrong. */
export function parseHeader(b: Uint8Array): RawHeader | undefined {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  if (num(b, 148, 8) !== sum) return undefined;
  const magic = cstr(b, 257, 6);
  const prefix = magic === 'ustar' ? cstr(b, 345, 155) : '';
  const name = cstr(b, 0, 100);
  return {
    name: prefix ? `${prefix}/${name}` : name,
    flag: String.fromCharCode(b[156]!),
    mode: num(b, 100, 8),
    size: num(b, 124, 12),
    linkname: cstr(b, 157, 100),
  };
}

/** The records of a pax extended header body (`<len> <key>=<value>\n` ...); undefined when malformed. */
export function parsePax(body: Uint8Array): Map<string, string> | undefined {
  const out = new Map<string, string>();
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  let i = 0;
  while (i < buf.length && buf[i] !== 0) {
    const sp = buf.indexOf(0x20, i);
    if (sp === -1) return undefined;
    const len = Number(buf.toString('latin1', i, sp));
    if (!Number.isSafeInteger(len) || len <= sp - i || i + len > buf.length || buf[i + len - 1] !== 0x0a) return undefined;
    const rec = buf.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) return undefined;
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** Bytes of data plus padding after a header of `size` bytes. */
export function paddedSize(size: number): number {
  return size + ((BLOCK - (size % BLOCK)) % BLOCK);
}

export type IndexEntryType = 'file' | 'directory' | 'symlink' | 'link';

/** What a header group (pax/long-name headers, then the real one) describes. */
export interface HeaderGroup {
  name: string;
  type: IndexEntryType | undefined;
  flag: string;
  mode: number;
  size: number;
  linkname: string;
}

/** The entry type of a ustar type flag, or undefined for kinds lander does not extract. */
export function entryType(flag: string): IndexEntryType | undefined {
  if (flag === '0' || flag === '\0' || flag === '7') return 'file';
  if (flag === '5') return 'directory';
  if (flag === '2') return 'symlink';
  if (flag === '1') return 'link';
  return undefined;
}

/** Applies pax and GNU long-name overrides to the real header that follows them. */
export function resolveGroup(h: RawHeader, pax: Map<string, string> | undefined, longName?: string, longLink?: string): HeaderGroup {
  const size = pax?.has('size') ? Number(pax.get('size')) : h.size;
  return {
    name: pax?.get('path') ?? longName ?? h.name,
    type: entryType(h.flag),
    flag: h.flag,
    mode: h.mode,
    size: Number.isSafeInteger(size) && size >= 0 ? size : -1,
    linkname: pax?.get('linkpath') ?? longLink ?? h.linkname,
  };
}
