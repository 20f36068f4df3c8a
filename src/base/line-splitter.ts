/**
 * Splits a child's output (a stream of byte chunks) into log lines.
 *
 * - A line cut across chunks is carried to the next chunk.
 * - A line longer than `maxLineBytes` is emitted as soon as the cap is
 *   reached, flagged `truncated`, and the rest of it up to the next newline
 *   is skipped (counted in `droppedBytes`): a 1 GB line costs 16 KiB of memory.
 * - Bytes are decoded as UTF-8 only per finished line, so a character split
 *   across chunks survives; invalid sequences become U+FFFD and the cut at the
 *   cap never splits a character.
 * - Everything else (ANSI escapes, tabs, other control characters) is kept
 *   verbatim: JSON logging escapes it, and operators may want the colours.
 */

/** One line of output, without its `\n` (and without a `\r` before it). */
export interface OutputLine {
  line: string;
  /** The line was longer than the cap; `line` holds its beginning. */
  truncated: boolean;
}

export interface LineSplitterOptions {
  /** Longest line kept, in bytes of UTF-8. @default 16384 */
  maxLineBytes?: number;
}

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;
const NL = 0x0a;
const CR = 0x0d;

export class LineSplitter {
  readonly maxLineBytes: number;
  /** Bytes of over-long lines that were skipped. */
  droppedBytes = 0;
  #carry: Buffer | undefined;
  /** True while skipping the tail of a line that was already emitted truncated. */
  #skipping = false;

  constructor(opts: LineSplitterOptions = {}) {
    const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(max) || max < 4) throw new RangeError(`Expected \`maxLineBytes\` to be an integer >= 4, got ${max}`);
    this.maxLineBytes = max;
  }

  /** Feeds one chunk; returns the lines it completed. */
  push(chunk: Uint8Array): OutputLine[] {
    const out: OutputLine[] = [];
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#carry) {
      // The carry is always < maxLineBytes, so this concat is bounded by cap + chunk.
      buf = Buffer.concat([this.#carry, buf]);
      this.#carry = undefined;
    }
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(NL, start);
      if (this.#skipping) {
        if (nl === -1) {
          this.droppedBytes += buf.length - start;
          return out;
        }
        this.droppedBytes += nl - start;
        this.#skipping = false;
        start = nl + 1;
        continue;
      }
      const end = nl === -1 ? buf.length : nl;
      if (end - start > this.maxLineBytes) {
        const cut = charBoundary(buf, start, start + this.maxLineBytes);
        out.push({ line: buf.toString('utf8', start, cut), truncated: true });
        this.droppedBytes += end - cut;
        if (nl === -1) {
          this.#skipping = true;
          return out;
        }
        start = nl + 1;
        continue;
      }
      if (nl === -1) {
        // Copy: the chunk's memory may be reused by the stream.
        this.#carry = Buffer.from(buf.subarray(start));
        return out;
      }
      out.push({ line: decodeLine(buf, start, nl), truncated: false });
      start = nl + 1;
    }
    return out;
  }

  /** Flushes a last line that had no newline. */
  end(): OutputLine[] {
    const carry = this.#carry;
    this.#carry = undefined;
    this.#skipping = false;
    if (!carry || carry.length === 0) return [];
    return [{ line: decodeLine(carry, 0, carry.length), truncated: false }];
  }
}

function decodeLine(buf: Buffer, start: number, end: number): string {
  if (end > start && buf[end - 1] === CR) end--;
  return buf.toString('utf8', start, end);
}

/** Moves `cut` back so it does not land inside a multi-byte UTF-8 character. */
function charBoundary(buf: Buffer, start: number, cut: number): number {
  // Continuation bytes are 10xxxxxx; a character has at most 3 of them.
  for (let i = 0; i < 3 && cut > start && (buf[cut]! & 0xc0) === 0x80; i++) cut--;
  return cut;
}
