/**
 * Pure decoding of raw tar header blocks and pax records, strict where GNU
 * tar and tar-stream could read the same bytes differently: a field either
 * has one meaning both agree on, or it is refused. Takes bytes, returns data.
 */

export const BLOCK = 512;
export const padded = (n: number): number => n + ((BLOCK - (n % BLOCK)) % BLOCK);

/** The kinds a type flag stands for, named for messages (GNU tar's names). */
const TYPE_NAMES: Record<string, string> = {
  '0': 'file', '\0': 'file', '7': 'contiguous file', '1': 'hard link', '2': 'symlink', '5': 'folder',
  '3': 'character device', '4': 'block device', '6': 'FIFO',
  x: 'pax header', g: 'global pax header', L: 'GNU long name', K: 'GNU long link name',
  S: 'GNU sparse file', D: 'GNU dumpdir (incremental backup folder)', V: 'GNU volume label',
  M: 'GNU multi-volume continuation', N: 'old GNU long-name list', A: 'Solaris ACL', E: 'Solaris extended attributes',
  X: 'Solaris extended header', I: 'inode metadata',
};

/** A type flag as words: `'S'` → `GNU sparse file`; unknown flags by their byte. */
export function typeName(flag: string): string {
  return TYPE_NAMES[flag] ?? `unknown type ${JSON.stringify(flag)} (byte ${flag.charCodeAt(0)})`;
}

export type TarFormat = 'ustar' | 'gnu' | 'v7';

/** POSIX ustar (`ustar\0`), old GNU (`ustar  \0`), or neither (pre-POSIX v7). */
export function headerFormat(h: Uint8Array): TarFormat {
  const m = Buffer.from(h.subarray(257, 265)).toString('latin1');
  if (m.startsWith('ustar\0')) return 'ustar';
  if (m === 'ustar  \0') return 'gnu';
  return 'v7';
}

/**
 * A numeric header field as GNU tar reads it: optional leading spaces, octal
 * digits, then NUL or space to the end; or GNU base-256 (high bit set,
 * positive only). `undefined` for anything else (GNU tar would complain,
 * tar-stream would guess).
 */
export function numericField(f: Uint8Array): number | undefined {
  if (f[0]! & 0x80) {
    if (f[0] !== 0x80) return undefined; // negative base-256: never a size or a mode
    let n = 0;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
    return Number.isSafeInteger(n) ? n : undefined;
  }
  let i = 0;
  while (i < f.length && f[i] === 0x20) i++;
  const start = i;
  while (i < f.length && f[i]! >= 0x30 && f[i]! <= 0x37) i++;
  if (i === start) return undefined;
  const n = parseInt(Buffer.from(f.subarray(start, i)).toString('latin1'), 8);
  for (; i < f.length; i++) if (f[i] !== 0 && f[i] !== 0x20) return undefined;
  return n;
}

/** True when the unsigned byte sum (checksum field as spaces) equals the checksum field, as tar-stream requires. */
export function checksumOk(h: Uint8Array): boolean {
  const want = numericField(h.subarray(148, 156));
  if (want === undefined) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === want;
}

export const isZeroBlock = (h: Uint8Array): boolean => h.every((b) => b === 0);

/** A NUL-terminated field's bytes (up to the first NUL, or all of it). */
export function cField(h: Uint8Array, off: number, len: number): Buffer {
  const f = h.subarray(off, off + len);
  const end = f.indexOf(0);
  return Buffer.from(end === -1 ? f : f.subarray(0, end));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** The bytes as a string when they are valid UTF-8; `undefined` otherwise (never a U+FFFD rewrite). */
export function strictUtf8(b: Uint8Array): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

/** A name for messages from bytes that may not be UTF-8: invalid bytes shown as `\xNN`. */
export function showBytes(b: Uint8Array): string {
  const s = strictUtf8(b);
  if (s !== undefined) return s;
  let out = '';
  for (const c of b) out += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return out;
}

export type PaxParse = { ok: true; records: Map<string, Buffer> } | { ok: false; reason: string };

/**
 * Parses a pax body strictly: every record is `<len> <key>=<value>\n`, `len`
 * decimal without a leading zero and counting the whole record, a non-empty
 * key, and nothing after the last record. Values stay bytes.
 */
export function parsePax(body: Buffer): PaxParse {
  const records = new Map<string, Buffer>();
  let off = 0;
  while (off < body.length) {
    const sp = body.indexOf(0x20, off);
    const digits = sp === -1 ? '' : body.subarray(off, sp).toString('latin1');
    if (!/^[1-9][0-9]{0,8}$/.test(digits)) return { ok: false, reason: `a record at byte ${off} has no valid length field` };
    const len = Number(digits);
    const end = off + len;
    if (end > body.length) return { ok: false, reason: `a record at byte ${off} says ${len} bytes, past the end of the header` };
    if (body[end - 1] !== 0x0a) return { ok: false, reason: `the record at byte ${off} (length ${len}) does not end with a newline` };
    const rec = body.subarray(sp + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) return { ok: false, reason: `the record at byte ${off} has no "key=value"` };
    // GNU tar reads keys as C strings: a NUL in one hides its '=' from it.
    if (rec.subarray(0, eq).includes(0)) return { ok: false, reason: `the record at byte ${off} has a NUL byte in its key` };
    const key = strictUtf8(rec.subarray(0, eq));
    if (key === undefined) return { ok: false, reason: `the record at byte ${off} has a key that is not UTF-8` };
    records.set(key, Buffer.from(rec.subarray(eq + 1)));
    off = end;
  }
  return { ok: true, records };
}

/** The pax keys of GNU sparse files (formats 0.0, 0.1 and 1.0). */
export function sparseFormat(records: ReadonlyMap<string, Buffer>): string | undefined {
  if (records.has('GNU.sparse.major') || records.has('GNU.sparse.minor')) {
    return `${records.get('GNU.sparse.major')?.toString() ?? '?'}.${records.get('GNU.sparse.minor')?.toString() ?? '?'}`;
  }
  if (records.has('GNU.sparse.map')) return '0.1';
  for (const k of records.keys()) if (k.startsWith('GNU.sparse.')) return '0.0';
  return undefined;
}
