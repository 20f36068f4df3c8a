/**
 * One direct HTTP/1.1 GET over a socket of its own (TCP, or TLS for
 * https), read straight into 1 MiB batches (`onread`), parsed by
 * `response-parser.ts`, and handed on as a Readable: each read's body
 * bytes are pushed as a slice of the batch they were read into (no copy).
 *
 * Why not node:http: on this 2-core machine, node:http took 1.1-1.3 s of
 * CPU to receive 531 MB over loopback (a fresh 64 KiB buffer per read, then
 * its parser and a stream push per read), a socket reading into 1 MiB
 * batches 0.25 s (`curl` 0.26 s). An install on two cores is CPU-bound:
 * that second was most of its gap to `curl | pigz -dc | tar -x`. node:http stays for
 * proxied requests and for keep-alive segments (`http-get.ts`).
 *
 * One request per connection (`Connection: close`); the socket is closed
 * when the body ends or is destroyed. Timeouts, abort and errors behave as
 * `http-get.ts` documents for its requests.
 */
import net from 'node:net';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import { HttpParseError, ResponseParser, type ResponseHead } from './response-parser.ts';
import { connectTimeoutError, idleTimeoutError } from '../transfer-timeouts.ts';

export interface LeanGetOptions {
  /** Request headers (lower-case names); Host and Connection are set here. */
  headers: Record<string, string>;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  signal?: AbortSignal;
}

export interface LeanResponse extends ResponseHead {
  body: Readable;
}

/** Reads go into batches of this size, one after another. */
const BATCH_BYTES = 1 << 20;
/**
 * One read takes at most this much, and what it brought is pushed before the next: a reader
 * that stops the body (the link probe) stops it within this many bytes, as with node:http's
 * 64 KiB reads. A fresh batch starts when less is left. Also the body's buffer before it
 * pauses the socket.
 */
const READ_BYTES = 256 << 10;

const EMPTY = Buffer.alloc(0);

/**
 * The body. The socket reads straight into a batch (`readBuffer`), the
 * parser finds the body bytes in it, and they are pushed as a slice of it:
 * no copy. Pauses the socket under back-pressure.
 */
class LeanBody extends Readable {
  private batch = Buffer.allocUnsafeSlow(BATCH_BYTES);
  private used = 0;
  /** Body bytes read and not yet pushed: `[start, end)` of one ArrayBuffer. */
  private pending: { buf: ArrayBufferLike; start: number; end: number } | undefined;
  private socket: net.Socket | undefined;

  constructor() {
    // A small buffer: a reader that destroys the body still gets what it buffered (the probe
    // handing over to segments should stop within a read or so, not a MiB later).
    // A small buffer: a reader that destroys the body still gets what it buffered, and the probe
    // handing over to segments must stop within a read or so, not a MiB later.
    super({ highWaterMark: READ_BYTES });
  }

  attach(socket: net.Socket): void {
    this.socket = socket;
  }

  /** Where the next read goes: the rest of the batch. */
  readBuffer(): Buffer {
    if (this.batch.length - this.used < READ_BYTES) {
      this.flush();
      this.batch = Buffer.allocUnsafeSlow(BATCH_BYTES);
      this.used = 0;
    }
    return this.batch.subarray(this.used, this.used + READ_BYTES);
  }

  /** `n` bytes were read into the last `readBuffer()`. */
  filled(n: number): void {
    this.used += n;
  }

  /** `buf[start, end)` is body: pushed at the end of this read (`flush`), with the body bytes after it in the read. */
  takeBody(buf: Uint8Array, start: number, end: number): void {
    const from = buf.byteOffset + start;
    const to = buf.byteOffset + end;
    const p = this.pending;
    if (p && p.buf === buf.buffer && p.end === from) p.end = to;
    else {
      this.flush();
      this.pending = { buf: buf.buffer, start: from, end: to };
    }
  }

  /** Pushes the body bytes taken and not yet pushed. */
  flush(): void {
    const p = this.pending;
    this.pending = undefined;
    if (!p || p.end === p.start || this.destroyed) return;
    if (!this.push(Buffer.from(p.buf, p.start, p.end - p.start))) this.socket?.pause();
  }

  /** The body is complete: what is left goes out, then the end. */
  finish(): void {
    this.flush();
    this.push(null);
    this.socket?.destroy();
  }

  /**
   * The connection failed after the head: the bytes received so far go out first, then the error
   * (a resume asks for what is missing, not for bytes that were here). node:http hands them over
   * the same way: it pushes each read at once.
   */
  failAfterData(err: Error): void {
    this.flush();
    this.failure ??= err;
    if (this.readableLength === 0) this.destroy(this.failure);
    else this.push(EMPTY); // a _read already called waits for a push: this one lets the next call come
  }

  private failure: Error | undefined;

  override _read(): void {
    if (this.failure) {
      // An empty push asks to be called again (a _read that pushes nothing is not), at the latest
      // once the consumer has taken what is buffered: then the error.
      if (this.readableLength === 0) this.destroy(this.failure);
      else this.push(EMPTY);
      return;
    }
    if (this.socket?.isPaused()) this.socket.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket?.destroy();
    cb(err);
  }
}

/** Sends one GET for `url` (http: or https:) and resolves with the head of its answer. */
export function leanGet(url: URL, o: LeanGetOptions): Promise<LeanResponse> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const request = requestText(url, o.headers);
  return new Promise<LeanResponse>((resolve, reject) => {
    const body = new LeanBody();
    let head: ResponseHead | undefined;
    let ended = false;
    const parser = new ResponseParser({
      head: (h) => {
        head = h;
        clearTimeout(connectTimer);
        resolve({ ...h, body });
      },
      body: (buf, start, end) => body.takeBody(buf, start, end),
      end: () => {
        ended = true;
        body.finish();
      },
    });
    const onread = {
      buffer: () => body.readBuffer(),
      callback: (n: number, buf: Uint8Array): boolean => {
        lastActivity = Date.now();
        body.filled(n);
        try {
          parser.feed(buf, 0, n);
          body.flush();
        } catch (err) {
          fail(err as Error);
          return false;
        }
        return true;
      },
    };
    const socket: net.Socket = url.protocol === 'https:'
      // `onread` works on TLS sockets too (Node and Deno), though @types/node lists it for net only.
      ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'], onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    body.attach(socket);

    /** `now`: drop what the body holds (a timeout, an abort); else it is read out before the error. */
    const fail = (err: Error, now = false) => {
      cleanup();
      socket.destroy();
      if (!head) reject(err);
      else if (now) body.destroy(err);
      else body.failAfterData(err);
    };
    const cleanup = () => {
      clearTimeout(connectTimer);
      clearInterval(idle);
      o.signal?.removeEventListener('abort', onAbort);
    };
    const connectTimer = setTimeout(() => {
      fail(connectTimeoutError(url, o.connectTimeoutMs), true);
    }, o.connectTimeoutMs);
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      socket.write(request);
    });
    // The idle check covers waiting for the head and every gap in the body, but not time the reader
    // spends applying back-pressure (a slow disk is not a dead server).
    let lastActivity = Date.now();
    const idle = setInterval(() => {
      if (socket.isPaused() || body.readableLength >= body.readableHighWaterMark) lastActivity = Date.now();
      else if (Date.now() - lastActivity >= o.idleTimeoutMs) {
        fail(idleTimeoutError(url, o.idleTimeoutMs), true);
      }
    }, Math.max(10, Math.min(1000, Math.floor(o.idleTimeoutMs / 4))));
    const onAbort = () => {
      const reason = o.signal!.reason;
      fail(reason instanceof Error ? reason : new Error(String(reason)), true);
    };
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => fail(err));
    socket.on('end', () => {
      try {
        parser.eof();
      } catch (err) {
        fail(Object.assign(err as HttpParseError, { code: head ? 'ECONNRESET' : (err as HttpParseError).code }));
      }
    });
    socket.once('close', () => {
      cleanup();
      if (!ended) fail(Object.assign(new Error(head ? 'the connection closed before the body ended' : 'the connection closed before a response'), { code: 'ECONNRESET' }));
    });
    body.once('close', cleanup);
  });
}

/** The request's text; refuses a header that would break it (as node:http does). */
function requestText(url: URL, headers: Record<string, string>): string {
  let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw Object.assign(new TypeError(`Invalid HTTP header name: ${JSON.stringify(name)}`), { code: 'ERR_INVALID_HTTP_TOKEN' });
    if (/[\r\n\0]/.test(value)) throw Object.assign(new TypeError(`Invalid character in the value of the HTTP header ${JSON.stringify(name)}`), { code: 'ERR_INVALID_CHAR' });
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'connection') continue;
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}
