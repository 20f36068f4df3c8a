import { describe, expect, it } from 'vitest';
import { HttpParseError, MAX_HEAD_BYTES, ResponseParser, type ResponseHead } from '../../src/fetch/http1/response-parser.ts';

interface Parsed {
  heads: ResponseHead[];
  readonly body: Buffer;
  ended: number;
  parser: ResponseParser;
}

function parser(): Parsed {
  const parts: Buffer[] = [];
  const out: Parsed = { heads: [], get body() { return Buffer.concat(parts); }, ended: 0, parser: undefined as unknown as ResponseParser };
  out.parser = new ResponseParser({
    head: (h) => out.heads.push(h),
    // A copy: the slice is valid during the call only.
    body: (buf, start, end) => { parts.push(Buffer.from(buf.subarray(start, end))); },
    end: () => { out.ended++; },
  });
  return out;
}

/** Feeds `wire` in pieces of `step` bytes, each in a buffer of its own that is then overwritten. */
function feedIn(p: Parsed, wire: Buffer, step: number): void {
  for (let i = 0; i < wire.length; i += step) {
    const piece = Buffer.from(wire.subarray(i, i + step));
    p.parser.feed(piece);
    piece.fill(0x58); // what a reused read buffer does to a slice kept past the hook
  }
}

const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));

describe('ResponseParser', () => {
  it('reads a Content-Length body exactly, however the bytes are split', () => {
    const wire = Buffer.concat([Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nETag: "a"\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n`), body, Buffer.from('GARBAGE AFTER')]);
    for (const step of [1, 2, 3, 7, 64, 1000, wire.length]) {
      const p = parser();
      feedIn(p, wire, step);
      expect(p.heads).toEqual([{ status: 206, headers: { 'content-length': '3000', etag: '"a"', 'x-dup': '1, 2' } }]);
      expect(p.body.equals(body)).toBe(true);
      expect(p.ended).toBe(1);
      expect(p.parser.done).toBe(true);
    }
  });

  it('decodes a chunked body with extensions and trailers, however the bytes are split', () => {
    const chunks = [body.subarray(0, 1000), body.subarray(1000, 1001), body.subarray(1001)];
    const wire = Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'),
      ...chunks.flatMap((c, i) => [Buffer.from(`${c.length.toString(16)}${i === 1 ? ';name=value' : ''}\r\n`), c, Buffer.from('\r\n')]),
      Buffer.from('0\r\nX-Trailer: t\r\n\r\n'),
    ]);
    for (const step of [1, 5, 999, wire.length]) {
      const p = parser();
      feedIn(p, wire, step);
      expect(p.body.equals(body)).toBe(true);
      expect(p.ended).toBe(1);
    }
  });

  it('skips interim 1xx answers and reports the final one', () => {
    const p = parser();
    p.parser.feed(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    expect(p.heads.map((h) => h.status)).toEqual([200]);
    expect(p.body.toString()).toBe('ok');
  });

  it('ends at once when there is no body (204, 304, Content-Length: 0)', () => {
    for (const head of ['HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n', 'HTTP/1.1 304 Not Modified\r\n\r\n', 'HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n']) {
      const p = parser();
      p.parser.feed(Buffer.from(head));
      expect(p.ended).toBe(1);
      expect(p.body.length).toBe(0);
    }
  });

  it('runs a body without length or chunking to the close, and one with another coding too', () => {
    for (const head of ['HTTP/1.0 200 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n']) {
      const p = parser();
      p.parser.feed(Buffer.from(`${head}all of it`));
      expect(p.ended).toBe(0);
      p.parser.eof();
      expect(p.body.toString()).toBe('all of it');
      expect(p.ended).toBe(1);
    }
  });

  it('refuses a close before the body is complete, naming what is missing', () => {
    const p = parser();
    p.parser.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234'));
    expect(p.parser.bodyRemaining).toBe(6);
    expect(() => p.parser.eof()).toThrow(/6 bytes of the body still to come/);
    const c = parser();
    c.parser.feed(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12'));
    expect(() => c.parser.eof()).toThrow(/in the middle of a chunked body/);
    const h = parser();
    h.parser.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-'));
    expect(() => h.parser.eof()).toThrow(/in the middle of the response head/);
    expect(() => parser().parser.eof()).toThrow(/without a response/);
  });

  it('refuses malformed heads and framing with an error that names the fault', () => {
    const bad: [string, RegExp][] = [
      ['SSH-2.0-OpenSSH\r\n\r\n', /does not start with an HTTP\/1.x status line: "SSH-2.0-OpenSSH"/],
      ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /malformed header line: "no colon here"/],
      ['HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', /malformed header line/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n', /invalid Content-Length: "5, 6"/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /invalid Content-Length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /invalid chunk-size line: "zz"/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', /data after a chunk's declared size/],
    ];
    for (const [wire, message] of bad) {
      const p = parser();
      let err: unknown;
      try {
        p.parser.feed(Buffer.from(wire));
      } catch (e) {
        err = e;
      }
      expect(err, wire).toBeInstanceOf(HttpParseError);
      expect((err as HttpParseError).code).toBe('ERR_HTTP_PARSE');
      expect((err as Error).message).toMatch(message);
    }
  });

  it('accepts repeated equal Content-Length values and refuses a head over the limit', () => {
    const p = parser();
    p.parser.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok'));
    expect(p.body.toString()).toBe('ok');
    const big = parser();
    const filler = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}`;
    expect(() => feedIn(big, Buffer.from(filler), 4096)).toThrow(`the response head is larger than ${MAX_HEAD_BYTES} bytes`);
  });
});
