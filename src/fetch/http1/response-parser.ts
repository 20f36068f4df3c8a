/**
 * An incremental HTTP/1.1 response parser (RFC 9112), pure: bytes in, the
 * head and body slices out through hooks. It knows the framing of a
 * response to GET: no body (1xx skipped, 204, 304), `Content-Length`,
 * `Transfer-Encoding: chunked` (trailers read and dropped), or until the
 * connection closes. Body slices point into the caller's buffer and are
 * valid only during the hook: the caller copies what it keeps, which lets
 * it read every socket chunk into one reused buffer (`lean-get.ts`).
 *
 * Malformed input throws an `HttpParseError` naming what is wrong.
 */

export interface ResponseHead {
  status: number;
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Record<string, string | undefined>;
}

export interface ParserHooks {
  head(head: ResponseHead): void;
  /** `buf[start, end)`: body bytes, valid during the call only. */
  body(buf: Uint8Array, start: number, end: number): void;
  /** The body is complete (after its last `body`). */
  end(): void;
}

export class HttpParseError extends Error {
  readonly code = 'ERR_HTTP_PARSE';
}

/** A head larger than this is refused (Node's own limit is 16 KiB). */
export const MAX_HEAD_BYTES = 64 << 10;
/** A chunk-size line or trailer line longer than this is refused. */
const MAX_LINE_BYTES = 4 << 10;

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'close' | 'done';

const LF = 10;

export class ResponseParser {
  private state: State = 'head';
  /** Head or line bytes not yet complete. */
  private pending: Uint8Array = new Uint8Array(0);
  /** Body bytes still expected: of the Content-Length, or of the current chunk. */
  private remaining = 0;
  private readonly hooks: ParserHooks;

  constructor(hooks: ParserHooks) {
    this.hooks = hooks;
  }

  /** Whether the response is complete. */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Bytes of body still expected under Content-Length, or undefined with other framing. */
  get bodyRemaining(): number | undefined {
    return this.state === 'length' ? this.remaining : undefined;
  }

  /** Feeds bytes in order; bytes after the response's end are ignored (one request per connection). */
  feed(buf: Uint8Array, start = 0, end = buf.length): void {
    let i = start;
    while (i < end && this.state !== 'done') {
      switch (this.state) {
        case 'head': i = this.readHead(buf, i, end); break;
        case 'length': {
          const n = Math.min(this.remaining, end - i);
          this.hooks.body(buf, i, i + n);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.finish();
          break;
        }
        case 'close':
          this.hooks.body(buf, i, end);
          i = end;
          break;
        case 'chunk-size': i = this.readLine(buf, i, end, (line) => this.onChunkSize(line)); break;
        case 'chunk-data': {
          const n = Math.min(this.remaining, end - i);
          this.hooks.body(buf, i, i + n);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = 'chunk-end';
          break;
        }
        case 'chunk-end': i = this.readLine(buf, i, end, (line) => {
          if (line.length !== 0) throw new HttpParseError('the chunked body has data after a chunk\'s declared size');
          this.state = 'chunk-size';
        }); break;
        case 'trailers': i = this.readLine(buf, i, end, (line) => { if (line.length === 0) this.finish(); }); break;
      }
    }
  }

  /** The connection closed: ends a body framed by the close; anything else incomplete throws. */
  eof(): void {
    if (this.state === 'done') return;
    if (this.state === 'close') return this.finish();
    if (this.state === 'head') throw new HttpParseError(this.pending.length === 0 ? 'the server closed the connection without a response' : 'the server closed the connection in the middle of the response head');
    if (this.state === 'length') throw new HttpParseError(`the server closed the connection with ${this.remaining} bytes of the body still to come`);
    throw new HttpParseError('the server closed the connection in the middle of a chunked body');
  }

  private finish(): void {
    this.state = 'done';
    this.pending = new Uint8Array(0);
    this.hooks.end();
  }

  private readHead(buf: Uint8Array, i: number, end: number): number {
    // The head usually comes whole in the first read; joining costs one copy of that read, once.
    const before = this.pending.length;
    const take = Math.min(end - i, MAX_HEAD_BYTES + 4 - before);
    const joined = asBuffer(concat(this.pending, buf.subarray(i, i + take)));
    const at = joined.indexOf('\r\n\r\n', Math.max(0, before - 3), 'latin1');
    if (at < 0 || at + 4 > MAX_HEAD_BYTES) {
      if (joined.length > MAX_HEAD_BYTES) throw new HttpParseError(`the response head is larger than ${MAX_HEAD_BYTES} bytes`);
      this.pending = joined;
      return i + take;
    }
    this.pending = new Uint8Array(0);
    this.onHead(joined.toString('latin1', 0, at));
    return i + (at + 4 - before);
  }

  private onHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
    if (!m) throw new HttpParseError(`the response does not start with an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(m[2]);
    const headers: Record<string, string | undefined> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw new HttpParseError(`the response has a malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    // Interim answers (100 Continue, 103 Early Hints) precede the real one.
    if (status >= 100 && status < 200) return;
    this.hooks.head({ status, headers });
    this.state = this.framing(status, headers);
    if (this.state === 'done') this.hooks.end();
  }

  private framing(status: number, headers: ResponseHead['headers']): State {
    if (status === 204 || status === 304) return 'done';
    const te = headers['transfer-encoding'];
    if (te !== undefined) {
      // Chunked only as the last coding frames the body; other codings run to the close (RFC 9112 6.3).
      return te.split(',').pop()!.trim().toLowerCase() === 'chunked' ? 'chunk-size' : 'close';
    }
    const cl = headers['content-length'];
    if (cl !== undefined) {
      const values = new Set(cl.split(',').map((v) => v.trim()));
      const [only] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(only!)) throw new HttpParseError(`the response has an invalid Content-Length: ${JSON.stringify(cl.slice(0, 80))}`);
      this.remaining = Number(only);
      return this.remaining === 0 ? 'done' : 'length';
    }
    return 'close';
  }

  private onChunkSize(line: string): void {
    const m = /^([0-9a-fA-F]{1,13})[ \t]*(?:;.*)?$/.exec(line);
    if (!m) throw new HttpParseError(`the chunked body has an invalid chunk-size line: ${JSON.stringify(line.slice(0, 80))}`);
    this.remaining = parseInt(m[1]!, 16);
    this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
  }

  /** Reads one line (CRLF, or a bare LF) and hands it over without its end. */
  private readLine(buf: Uint8Array, i: number, end: number, take: (line: string) => void): number {
    let j = i;
    while (j < end && buf[j] !== LF) j++;
    if (j === end) {
      if (this.pending.length + end - i > MAX_LINE_BYTES) throw new HttpParseError(`the chunked body has a line longer than ${MAX_LINE_BYTES} bytes`);
      this.pending = concat(this.pending, buf.subarray(i, end));
      return end;
    }
    const bytes = concat(this.pending, buf.subarray(i, j));
    this.pending = new Uint8Array(0);
    let text = asBuffer(bytes).toString('latin1');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    take(text);
    return j + 1;
  }
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.length);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return Uint8Array.from(b);
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
