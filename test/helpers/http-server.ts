/**
 * A real HTTP server on 127.0.0.1:0 for download tests: serves buffers or
 * files with Range, ETag and Last-Modified (and 304 for If-None-Match /
 * If-Modified-Since), and misbehaves on request per
 * path (cut or stall the body, ignore Range, lie in Content-Range, answer
 * 429/503 with Retry-After, redirect, 404). Counts requests and body bytes
 * sent per path, so a test can prove bytes were not downloaded twice.
 *
 * @example
 * const srv = await startTestServer();
 * srv.serve('/a.tar.gz', archiveBuffer);
 * srv.misbehave('/a.tar.gz', { cutAfter: 1_000_000 });
 * // ... download srv.url('/a.tar.gz') ...
 * srv.stats('/a.tar.gz').bytesSent;
 * await srv.close();
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';

/** One way to misbehave; applies to the next `times` requests of a path. */
export interface Misbehaviour {
  /** Send this many body bytes, then destroy the connection. */
  cutAfter?: number;
  /** Send this many body bytes, then send nothing more (until the client gives up). */
  stallAfter?: number;
  /** Send this many body bytes, then close the connection cleanly (FIN): a body shorter than its Content-Length. */
  endAfter?: number;
  /** Send the body at about this many bytes per second, in small pieces (a slow but live link). */
  rate?: number;
  /** With `rate`: send this many bytes at once first, as a capped server's socket buffers do (nginx `limit_rate`). */
  burst?: number;
  /** Answer a Range request with the whole body and 200. */
  ignoreRange?: boolean;
  /** Answer a Range request with 206 whose Content-Range (and body) start this many bytes off. */
  wrongRangeShift?: number;
  /** Answer with this status (e.g. 404, 429, 503) and an empty body. */
  status?: number;
  /** Retry-After header for `status`, seconds or HTTP date. */
  retryAfter?: string;
  /** Redirect (302) to this path or absolute URL. */
  redirectTo?: string;
  /**
   * With `redirectTo`, redirect to a one-time signed URL instead, as GitHub
   * does: the signed URL serves exactly one request, then answers 403.
   */
  expiring?: boolean;
  /** Requests this applies to before the path behaves again. @default 1 */
  times?: number;
  /** Requests of the path served normally before this applies (e.g. 1: not the first). @default 0 */
  after?: number;
  /** Serve with this ETag instead (If-Range is checked against it): the resource "changed". */
  etag?: string;
  /** Answer only after this many ms (a slow origin or sidecar); then as the other fields say. */
  delayMs?: number;
}

export interface PathStats {
  requests: number;
  /** Body bytes written to sockets for this path, over all requests. */
  bytesSent: number;
  /** The Range header of each request (undefined when none). */
  ranges: (string | undefined)[];
  /** The If-Range header of each request. */
  ifRanges: (string | undefined)[];
  /** The If-None-Match header of each request. */
  ifNoneMatches: (string | undefined)[];
  /** Requests answered 304 Not Modified. */
  notModified: number;
  /** Arrival time (performance.now()) of each request. */
  times: number[];
}

export interface ServeOptions {
  /** @default a quoted hash of the content */
  etag?: string | null;
  /** @default the server's start time */
  lastModified?: Date | null;
  /** Send every body at about this many bytes per second (a misbehaviour's `rate` wins). */
  rate?: number;
}

export interface TestServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly origin: string;
  /** Full URL of a path. */
  url(path: string): string;
  /** Serves a buffer (or a file's current content) at `path`. */
  serve(path: string, content: Buffer | string, opts?: ServeOptions): void;
  /** Serves the file at `file` (read once, now). */
  serveFile(path: string, file: string, opts?: ServeOptions): Promise<void>;
  /** Queues a misbehaviour for a path; several queue up in order. */
  misbehave(path: string, m: Misbehaviour): void;
  stats(path: string): PathStats;
  /** Sum of body bytes sent on all paths. */
  totalBytesSent(): number;
  close(): Promise<void>;
}

interface Served { body: Buffer; etag?: string; lastModified?: string; rate?: number }

/** Starts the server on 127.0.0.1 and an ephemeral port. */
export async function startTestServer(): Promise<TestServer> {
  const files = new Map<string, Served>();
  const faults = new Map<string, Misbehaviour[]>();
  const stats = new Map<string, PathStats>();
  const signed = new Map<string, { target: string; used: boolean }>();
  const sockets = new Set<Socket>();
  const started = new Date(Math.floor(Date.now() / 1000) * 1000);
  let signCounter = 0;

  const statsFor = (p: string) => {
    let s = stats.get(p);
    if (!s) stats.set(p, (s = { requests: 0, bytesSent: 0, ranges: [], ifRanges: [], ifNoneMatches: [], notModified: 0, times: [] }));
    return s;
  };
  const nextFault = (p: string): Misbehaviour | undefined => {
    const q = faults.get(p);
    const m = q?.[0];
    if (!m) return undefined;
    if ((m.after ?? 0) > 0) { m.after!--; return undefined; }
    m.times = (m.times ?? 1) - 1;
    if (m.times <= 0) q!.shift();
    return m;
  };

  const server = http.createServer((req, res) => {
    let p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const st = statsFor(p);
    st.requests++;
    st.times.push(performance.now());
    st.ranges.push(req.headers.range);
    st.ifRanges.push(req.headers['if-range'] as string | undefined);
    st.ifNoneMatches.push(req.headers['if-none-match']);
    if (p.startsWith('/_signed/')) {
      const s = signed.get(p);
      if (!s || s.used) { res.writeHead(403).end(); return; }
      s.used = true;
      p = s.target;
      statsFor(p).requests++;
    }
    const fault = nextFault(p);
    if (fault?.delayMs) setTimeout(() => respond(p, fault, st, req, res), fault.delayMs);
    else respond(p, fault, st, req, res);
  });
  const respond = (p: string, fault: Misbehaviour | undefined, st: PathStats, req: http.IncomingMessage, res: http.ServerResponse) => {
    if (fault?.redirectTo !== undefined) {
      let to = fault.redirectTo;
      if (fault.expiring) {
        const token = `/_signed/${++signCounter}${to}`;
        signed.set(token, { target: to, used: false });
        to = token;
      }
      res.writeHead(302, { location: to }).end();
      return;
    }
    if (fault?.status !== undefined) {
      res.writeHead(fault.status, fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}).end();
      return;
    }
    const f = files.get(p);
    if (!f) { res.writeHead(404).end(); return; }
    // Conditional GET (RFC 9110 13.2.2): If-None-Match decides when present, else If-Modified-Since.
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    const fresh = inm !== undefined
      ? f.etag !== undefined && inm.split(',').some((t) => t.trim() === f.etag || t.trim() === '*')
      : ims !== undefined && f.lastModified !== undefined && Date.parse(f.lastModified) <= Date.parse(ims);
    if (fresh && !fault) {
      st.notModified++;
      res.writeHead(304, { ...(f.etag ? { etag: f.etag } : {}), ...(f.lastModified ? { 'last-modified': f.lastModified } : {}) }).end();
      return;
    }
    const size = f.body.length;
    const headers: Record<string, string> = { 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    const etag = fault?.etag ?? f.etag;
    if (etag) headers.etag = etag;
    if (f.lastModified) headers['last-modified'] = f.lastModified;
    let start = 0;
    let end = size; // exclusive
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'] as string | undefined;
    const validatorOk = !ifRange || ifRange === etag || (fault?.etag === undefined && ifRange === f.lastModified);
    if (m && validatorOk && !fault?.ignoreRange) {
      start = Number(m[1]);
      if (start >= size) {
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      if (fault?.wrongRangeShift) start = Math.max(0, Math.min(size - 1, start + fault.wrongRangeShift));
      // `bytes=N-M`, a closed range (segments, the chunked installer's runs); M past the end means the end.
      if (m[2]) end = Math.min(size, Math.max(start + 1, Number(m[2]) + 1));
      status = 206;
      headers['content-range'] = `bytes ${start}-${end - 1}/${size}`;
    }
    headers['content-length'] = String(end - start);
    res.writeHead(status, headers);
    const body = f.body.subarray(start, end);
    const limit = fault?.cutAfter ?? fault?.stallAfter ?? fault?.endAfter;
    const send = limit === undefined ? body : body.subarray(0, limit);
    writeCounted(res, send, st, () => {
      if (limit === undefined) res.end();
      // Destroy only after the bytes were handed to the kernel, so the client receives exactly `cutAfter` bytes.
      else if (fault?.cutAfter !== undefined) res.socket?.destroy();
      else if (fault?.endAfter !== undefined) res.socket?.end();
      // stallAfter: leave the socket open and silent.
    }, fault?.rate ?? f.rate, fault?.burst);
  };
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const serve = (p: string, content: Buffer | string, opts: ServeOptions = {}) => {
    const body = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const etag = opts.etag === null ? undefined : (opts.etag ?? `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`);
    const lastModified = opts.lastModified === null ? undefined : (opts.lastModified ?? started).toUTCString();
    files.set(p, { body, etag, lastModified, ...(opts.rate !== undefined ? { rate: opts.rate } : {}) });
  };
  return {
    origin,
    url: (p) => origin + p,
    serve,
    async serveFile(p, file, opts) { serve(p, await readFile(file), opts); },
    misbehave(p, m) {
      const q = faults.get(p) ?? [];
      q.push({ ...m });
      faults.set(p, q);
    },
    stats: (p) => statsFor(p),
    totalBytesSent: () => [...stats.values()].reduce((a, s) => a + s.bytesSent, 0),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Writes in 64 KiB pieces with back-pressure (or, with `rate`, 20 small pieces a second), counting what went out. */
function writeCounted(res: http.ServerResponse, body: Buffer, st: PathStats, done: () => void, rate?: number, burst?: number): void {
  if (rate !== undefined) return trickle(res, body, st, done, rate, burst ?? 0);
  const piece = 64 * 1024;
  let off = 0;
  const pump = () => {
    while (off < body.length) {
      if (res.destroyed) return;
      const chunk = body.subarray(off, off + piece);
      off += chunk.length;
      st.bytesSent += chunk.length;
      // The last chunk's callback runs once the socket handed it (and so all before it) to the kernel;
      // an empty write's callback would run at once, with bytes still in Node's buffer for a destroy to drop.
      if (off >= body.length) { res.write(chunk, () => done()); return; }
      if (!res.write(chunk)) { res.once('drain', pump); return; }
    }
    done();
  };
  pump();
}

function trickle(res: http.ServerResponse, body: Buffer, st: PathStats, done: () => void, rate: number, burst: number): void {
  const piece = Math.max(1, Math.floor(rate / 20));
  let off = 0;
  let first = burst;
  const tick = () => {
    if (res.destroyed) return;
    const chunk = body.subarray(off, off + Math.max(piece, first));
    first = 0;
    off += chunk.length;
    st.bytesSent += chunk.length;
    if (off >= body.length) { res.write(chunk, () => done()); return; }
    res.write(chunk);
    setTimeout(tick, 50);
  };
  tick();
}
