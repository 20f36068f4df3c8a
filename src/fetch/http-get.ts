/**
 * One HTTP(S) or file: GET, following redirects, with a connect timeout and
 * an idle-body timeout, and optional `Range: bytes=N-` with `If-Range`.
 * Retries live with the caller: a resumable download must decide what a
 * broken body means for the bytes it already has.
 *
 * A direct request goes over a lean HTTP/1.1 client of its own
 * (`http1/lean-get.ts`: a fifth of node:http's CPU per byte); a proxied
 * one, and segments on a keep-alive `agent`, over node:http/node:https.
 * Both run the same under Deno's node compat. Honours HTTP(S)_PROXY and
 * NO_PROXY (see proxy.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { DownloadError } from '../base/errors.ts';
import { leanGet } from './http1/lean-get.ts';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, connectTimeoutError, idleTimeoutError } from './transfer-timeouts.ts';
import { connectToProxy, openTunnel, proxyAuthHeader, proxyFor } from './proxy.ts';

export interface HttpGetOptions {
  /** Time to establish the TCP/TLS connection. @default 15000 */
  connectTimeoutMs?: number;
  /** Time without a byte (headers or body, while the reader wants data) before the request is dropped. @default 30000 */
  idleTimeoutMs?: number;
  /** Redirects followed before giving up. @default 10 */
  maxRedirects?: number;
  /** Ask for the bytes from this offset on (`Range: bytes=N-`). */
  offset?: number;
  /** Ask for the bytes before this offset only (`Range: bytes=N-M`, M = end - 1); needs `offset`. */
  end?: number;
  /** A keep-alive agent for direct (unproxied) requests, so segments reuse connections. @default none (one connection per request) */
  agent?: http.Agent;
  /** ETag or Last-Modified for `If-Range`: a changed resource then comes back whole (200). */
  ifRange?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Aborts the request and the body. */
  signal?: AbortSignal;
  /** Read buffer for file: URLs. @default 1 MiB */
  highWaterMark?: number;
}

export interface HttpResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  /** The URL that answered, after redirects. */
  url: string;
  /** The body; the caller must consume or destroy it. */
  body: Readable;
}

export { ERR_CONNECT_TIMEOUT, ERR_IDLE_TIMEOUT } from './transfer-timeouts.ts';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Statuses a server may answer while overloaded or restarting. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/**
 * Performs one GET. Redirects are followed (http and https only; a redirect
 * to file: is refused), keeping the Range headers. Resolves once response
 * headers of a non-redirect answer arrive, whatever the status.
 *
 * @example const res = await httpGet(url, { offset: 1024, ifRange: etag });
 */
export async function httpGet(url: string, opts: HttpGetOptions = {}): Promise<HttpResponse> {
  const maxRedirects = opts.maxRedirects ?? 10;
  let current = new URL(url);
  if (current.protocol === 'file:') return fileGet(current, opts);
  let o = opts;
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${url}: redirected to the unsupported URL scheme ${current.protocol}`, { data: { url, location: current.href } });
    }
    const res = await requestOnce(current, o);
    const location = res.headers.location;
    if (!REDIRECTS.has(res.status) || location === undefined) return res;
    res.body.destroy();
    if (hop >= maxRedirects) {
      throw new DownloadError('ERR_TOO_MANY_REDIRECTS', `Cannot download ${url}: more than ${maxRedirects} redirects`, { data: { url, lastUrl: current.href } });
    }
    const next = new URL(location, current);
    // A registry's token is for the registry: blob storage it redirects to gets a signed URL instead (as curl and docker do).
    if (next.origin !== current.origin && o.headers) o = { ...o, headers: withoutAuthorization(o.headers) };
    current = next;
  }
}

function withoutAuthorization(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => k.toLowerCase() !== 'authorization'));
}

async function requestOnce(url: URL, opts: HttpGetOptions): Promise<HttpResponse> {
  const proxy = proxyFor(url);
  if (!proxy && !opts.agent) {
    const res = await leanGet(url, {
      headers: baseHeaders(opts), connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { status: res.status, headers: res.headers, url: url.href, body: res.body };
  }
  if (!proxy) {
    const agent = (url.protocol === 'https:') === opts.agent instanceof https.Agent ? opts.agent : false;
    return requestVia(url, opts, () => (url.protocol === 'https:' ? https : http).get(url, { headers: baseHeaders(opts), agent }));
  }
  if (url.protocol === 'http:') {
    // An absolute-URI request to the proxy (RFC 9112 3.2.2).
    // Over TCP or TLS to the proxy (connectToProxy); one request per connection, so it closes with the body.
    return requestVia(url, opts, () => http.get({ path: url.href, headers: { ...baseHeaders(opts), host: url.host, connection: 'close', ...proxyAuthHeader(proxy) }, createConnection: () => connectToProxy(proxy) }));
  }
  const tunnel = await openTunnel(proxy, url, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, opts.signal);
  // One request per tunnel: the socket is ours to close, or a kept-alive tunnel holds the process open.
  // The TLS is already up inside the tunnel, so plain http speaks over it. No `agent` at all: with
  // `agent: false` Node builds a fresh Agent that ignores `createConnection` and dials the origin
  // directly, around the proxy (it did, before this was caught by counting bytes in the tunnel).
  const res = await requestVia(url, opts, () => http.get({
    host: url.hostname, port: url.port || 443, path: `${url.pathname}${url.search}`,
    headers: { ...baseHeaders(opts), host: url.host, connection: 'close' }, createConnection: () => tunnel,
  })).catch((err: unknown) => {
    tunnel.destroy();
    throw err;
  });
  res.body.once('close', () => tunnel.destroy());
  return res;
}

function baseHeaders(opts: HttpGetOptions): Record<string, string> {
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...opts.headers };
  if (opts.end !== undefined) {
    headers.range = `bytes=${opts.offset ?? 0}-${opts.end - 1}`;
    if (opts.ifRange) headers['if-range'] = opts.ifRange;
  } else if (opts.offset !== undefined && opts.offset > 0) {
    headers.range = `bytes=${opts.offset}-`;
    if (opts.ifRange) headers['if-range'] = opts.ifRange;
  }
  return headers;
}

function requestVia(url: URL, opts: HttpGetOptions, start: () => http.ClientRequest): Promise<HttpResponse> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const req = start();
    const fail = (err: Error) => {
      clearTimeout(connectTimer);
      clearInterval(idle);
      opts.signal?.removeEventListener('abort', onAbort);
      if (!settled) { settled = true; reject(err); }
      req.destroy(err);
    };
    const connectTimer = setTimeout(() => {
      fail(connectTimeoutError(url, connectTimeoutMs));
    }, connectTimeoutMs);
    req.on('socket', (socket) => {
      // A reused or already-connected socket never emits 'connect'.
      if (!socket.connecting) clearTimeout(connectTimer);
      else socket.once('connect', () => clearTimeout(connectTimer));
    });
    // The idle check covers waiting for headers and every gap in the body,
    // but not time the reader spends applying back-pressure (a slow disk is
    // not a dead server). It polls the socket's byte count rather than
    // listening for 'data', which would switch the body to flowing mode
    // before the caller has attached its pipe.
    let idle: NodeJS.Timeout | undefined;
    let body: http.IncomingMessage | undefined;
    let lastBytes = -1;
    let lastActivity = Date.now();
    const check = () => {
      const read = req.socket?.bytesRead ?? 0;
      const paused = body !== undefined && (body.readableFlowing === false || body.readableLength >= body.readableHighWaterMark);
      if (read !== lastBytes || paused) {
        lastBytes = read;
        lastActivity = Date.now();
      } else if (Date.now() - lastActivity >= idleTimeoutMs) {
        clearInterval(idle);
        const e = idleTimeoutError(url, idleTimeoutMs);
        if (body) body.destroy(e);
        else fail(e);
      }
    };
    idle = setInterval(check, Math.max(10, Math.min(1000, Math.floor(idleTimeoutMs / 4))));
    const onAbort = () => {
      const reason = opts.signal!.reason;
      if (body) body.destroy(reason instanceof Error ? reason : new Error(String(reason)));
      else fail(reason instanceof Error ? reason : new Error(String(reason)));
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => fail(err));
    req.on('response', (res) => {
      clearTimeout(connectTimer);
      body = res;
      settled = true;
      res.once('close', () => { clearInterval(idle); opts.signal?.removeEventListener('abort', onAbort); });
      resolve({ status: res.statusCode ?? 0, headers: flatten(res.headers), url: url.href, body: res });
    });
  });
}

function flatten(h: http.IncomingHttpHeaders): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(h)) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** file: URLs answer like a Range-capable server, with an ETag built from size and mtime. */
async function fileGet(url: URL, opts: HttpGetOptions): Promise<HttpResponse> {
  const file = fileURLToPath(url);
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const status = code === 'ENOENT' ? 404 : 403;
    return { status, headers: {}, url: url.href, body: emptyBody() };
  }
  const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const lastModified = st.mtime.toUTCString();
  const base = { etag, 'last-modified': lastModified, 'accept-ranges': 'bytes' };
  let offset = opts.offset ?? 0;
  if (offset > 0 && opts.ifRange && opts.ifRange !== etag && opts.ifRange !== lastModified) offset = 0;
  if (offset > st.size) return { status: 416, headers: { ...base, 'content-range': `bytes */${st.size}` }, url: url.href, body: emptyBody() };
  const body = createReadStream(file, { start: offset, highWaterMark: opts.highWaterMark ?? 1 << 20 });
  if (opts.signal) {
    const onAbort = () => body.destroy(opts.signal!.reason);
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
    body.once('close', () => opts.signal!.removeEventListener('abort', onAbort));
  }
  const headers: Record<string, string> = { ...base, 'content-length': String(st.size - offset) };
  if (offset > 0) headers['content-range'] = `bytes ${offset}-${st.size - 1}/${st.size}`;
  return { status: offset > 0 ? 206 : 200, headers, url: url.href, body };
}

function emptyBody(): Readable {
  return Readable.from([]);
}

/** Parses `bytes 100-199/200`, or `bytes *\/200` as sent with a 416. */
export function parseContentRange(v: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)\s*$/i.exec(v);
  if (!m) return undefined;
  return {
    start: m[1] !== undefined ? Number(m[1]) : undefined,
    end: m[2] !== undefined ? Number(m[2]) : undefined,
    total: m[3] !== '*' ? Number(m[3]) : undefined,
  };
}
