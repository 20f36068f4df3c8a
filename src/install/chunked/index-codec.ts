/**
 * The byte primitives of the chunk index (pure): LEB128 varints, raw bytes,
 * 32-byte SHA-256s and length-prefixed UTF-8 strings, written into a
 * growing buffer and read back with a bound check on every read.
 */
import { ArchiveError } from '../../base/errors.ts';

export class Writer {
  private parts: Buffer[] = [];
  private cur = Buffer.allocUnsafe(1 << 16);
  private pos = 0;
  private total = 0;
  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.parts.push(this.cur.subarray(0, this.pos));
    this.cur = Buffer.allocUnsafe(Math.max(1 << 16, n));
    this.pos = 0;
  }
  /** Bytes written so far. */
  get length(): number {
    return this.total;
  }
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Cannot encode the index: ${v} is not a non-negative integer`);
    this.room(8);
    const at = this.pos;
    while (v >= 0x80) {
      this.cur[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.cur[this.pos++] = v;
    this.total += this.pos - at;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
    this.total += b.length;
  }
  hex32(h: string): void {
    const b = Buffer.from(h, 'hex');
    if (b.length !== 32) throw new RangeError(`Cannot encode the index: ${JSON.stringify(h)} is not a SHA-256`);
    this.bytes(b);
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

export function indexError(why: string, data: Record<string, unknown> = {}): ArchiveError {
  return new ArchiveError('ERR_INDEX_INVALID', `Cannot use the chunk index: ${why}`, { data });
}

export class Reader {
  pos = 0;
  private readonly b: Buffer;
  /** Names the region in errors ("the head", "leaf 12"). */
  private readonly what: string;
  constructor(b: Buffer, what = 'it') {
    this.b = b;
    this.what = what;
  }
  private need(n: number): void {
    if (this.pos + n > this.b.length) throw indexError(`${this.what} ends early (at byte ${this.pos})`);
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
    throw indexError(`a number at byte ${this.pos} of ${this.what} is too large`);
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
