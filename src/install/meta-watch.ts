/**
 * Watches the decompressed tar stream, ahead of tar-stream, for pax and GNU
 * long-name headers ('x', 'g', 'L', 'K'). tar-stream reads such a header's
 * body whole into memory before it shows the entry it belongs to; this sees
 * the header block first and reports an over-limit run of them before its
 * body is buffered (HOSTILE-INPUT #17). It only reads the bytes; it never
 * changes them, and tar-stream stays the parser of record.
 */

const BLOCK = 512;
const META_TYPES = new Set(['x', 'g', 'L', 'K']);
/** tar-stream reads `size` body bytes after every header but a folder's (links included, as tar does). */
const NO_BODY = new Set(['5']);

const padded = (n: number) => n + ((BLOCK - (n % BLOCK)) % BLOCK);

/** The size field: octal text, or GNU base-256 when the first byte's high bit is set. */
export function headerSize(field: Uint8Array): number {
  if (field[0]! & 0x80) {
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = Buffer.from(field).toString('latin1').replace(/\0.*$/s, '').trim();
  const n = text === '' ? 0 : parseInt(text, 8);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

/** The `size` record of a pax body ("<len> size=<n>\n"), if any. */
export function paxSize(body: Buffer): number | undefined {
  const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(body.toString('utf8'));
  return m ? Number(m[1]) : undefined;
}

export interface MetaOverflow {
  /** Bytes of consecutive meta headers (blocks and padded bodies) before the next real entry. */
  bytes: number;
  /** The type flag of the header that crossed the limit. */
  type: string;
  /** That header's own name field (e.g. "PaxHeader/f", "././@LongLink"): the entry to name in the error. */
  name: string;
}

export class MetaHeaderWatch {
  readonly #max: number;
  #pos = 0;
  #nextHeader = 0;
  #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #metaRun = 0;
  /** A pax body being read for its `size` record (bounded by the limit). */
  #pax: { parts: Buffer[]; left: number } | undefined;
  #sizeOverride: number | undefined;

  constructor(maxMetaBytes: number) {
    this.#max = maxMetaBytes;
  }

  /** Feeds decompressed bytes in order; returns the overflow as soon as a header shows it, else undefined. */
  feed(chunk: Buffer): MetaOverflow | undefined {
    let off = 0;
    while (off < chunk.length) {
      if (this.#pos < this.#nextHeader) {
        const n = Math.min(this.#nextHeader - this.#pos, chunk.length - off);
        if (this.#pax && this.#pax.left > 0) {
          const take = Math.min(n, this.#pax.left);
          this.#pax.parts.push(Buffer.from(chunk.subarray(off, off + take)));
          this.#pax.left -= take;
          if (this.#pax.left === 0) {
            this.#sizeOverride = paxSize(Buffer.concat(this.#pax.parts)) ?? this.#sizeOverride;
            this.#pax = undefined;
          }
        }
        off += n;
        this.#pos += n;
        continue;
      }
      const n = Math.min(BLOCK - this.#headerFill, chunk.length - off);
      chunk.copy(this.#header, this.#headerFill, off, off + n);
      this.#headerFill += n;
      off += n;
      this.#pos += n;
      if (this.#headerFill < BLOCK) break;
      this.#headerFill = 0;
      const overflow = this.#onHeader();
      if (overflow) return overflow;
    }
    return undefined;
  }

  #onHeader(): MetaOverflow | undefined {
    const h = this.#header;
    if (h.every((b) => b === 0)) return undefined; // end-of-archive blocks: the next block is read as a header
    const type = String.fromCharCode(h[156]!);
    const size = headerSize(h.subarray(124, 136));
    if (META_TYPES.has(type)) {
      this.#metaRun += BLOCK + padded(size);
      if (this.#metaRun > this.#max) return { bytes: this.#metaRun, type, name: h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '') };
      if (type === 'x') this.#pax = { parts: [], left: size };
      this.#nextHeader = this.#pos + padded(size);
      return undefined;
    }
    this.#metaRun = 0;
    const body = NO_BODY.has(type) ? 0 : (this.#sizeOverride ?? size);
    this.#sizeOverride = undefined;
    this.#nextHeader = this.#pos + padded(body);
    return undefined;
  }
}
