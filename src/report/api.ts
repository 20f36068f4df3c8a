/**
 * The status API: `GET /status`, `GET /healthz`, `GET /events` (SSE), `GET /metrics`,
 * `POST /check|/restart|/rollback`, served by node:http on a unix socket
 * (mode 0600, no token: the file mode is the guard) and optionally on a
 * loopback TCP port (every request needs `Authorization: Bearer <token>`).
 *
 * Inputs are hostile until checked: bodies are capped, slow clients are cut
 * by header/request timeouts, connections and event streams are capped, and
 * a client that does not read its event stream cannot grow memory.
 *
 * @example
 * const api = await startApi({ control: daemon, socketPath: '/var/lib/lander/lander.sock', log });
 * // ...
 * await api.close();
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { DaemonControl } from './daemon-model.ts';
import { LanderError } from '../base/errors.ts';
import { EventStream } from './event-stream.ts';
import type { Logger } from './log.ts';
import { Registry } from './metrics.ts';
import { isLoopbackAddress, prepareSocketPath, removeOwnSocket, verifySocket } from './api-socket.ts';

export interface ApiOptions {
  control: DaemonControl;
  /** Unix socket path; created with mode 0600, a stale socket there is replaced. */
  socketPath: string;
  /** Also listen on loopback TCP; `port` 0 picks a free port (see `tcpPort`). */
  tcp?: { host: string; port: number; token: string };
  log: Logger;
  /** Request bodies above this are answered 413 and the connection closed. @default 16384 */
  maxBodyBytes?: number;
  /** Time a client has to send the request headers. @default 10000 */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request (headers and body). @default 30000 */
  requestTimeoutMs?: number;
  /** Open connections per listener; more are dropped on accept. @default 64 */
  maxConnections?: number;
  /** Concurrent `/events` streams; more are answered 503. @default 16 */
  maxEventStreams?: number;
  /** Bytes an event-stream client may leave unread before events are dropped. @default 262144 */
  sseMaxBufferedBytes?: number;
  /** Time between `: ping` comments on event streams. @default 15000 */
  ssePingIntervalMs?: number;
  /** Error codes from the control answered 409 (a refusal, not a fault); others are 500. */
  conflictCodes?: readonly string[];
}

export interface ApiStats {
  requests: number;
  eventStreams: number;
  droppedEvents: number;
  slowClosed: number;
}

export interface ApiServer {
  socketPath: string;
  tcpPort?: number;
  stats(): ApiStats;
  /** Stops listening, ends event streams, closes connections, removes the socket file. */
  close(): Promise<void>;
}

/** Codes the daemon uses for "cannot do that now" rather than "something broke". */
export const DEFAULT_CONFLICT_CODES: readonly string[] = ['ERR_NO_SERVER', 'ERR_NO_GENERATION', 'ERR_NO_ROLLBACK', 'ERR_BUSY', 'ERR_LOCKED', 'ERR_ABORTED', 'ERR_CONFIG'];

const JSON_TYPE = 'application/json; charset=utf-8';
const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

/** SHA-256 both sides first so the comparison is constant-time whatever the lengths. */
function tokenMatches(header: string | undefined, token: Buffer): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  return timingSafeEqual(given, token) && m !== null;
}

/** Bounded strings for logs: a hostile path or method must not bloat a log line. */
function clip(s: string | undefined, n = 200): string {
  const v = s ?? '';
  return v.length > n ? `${v.slice(0, n)}…` : v;
}

/**
 * Closes after an early answer (413, 401) without losing it: closing a socket
 * with unread request bytes makes the kernel send RST, and the client then
 * sees ECONNRESET instead of our status. So send FIN, keep reading and
 * discarding for a bounded time and byte count, then close. Node's server
 * calls `destroySoon()` after a `Connection: close` response; this socket's
 * gets the lingering version.
 */
function lingerOnClose(req: IncomingMessage, maxMs = 2000, maxBytes = 4 * 1024 * 1024): void {
  const socket = req.socket;
  // Keep the body flowing, and discarded: an unread request fills its buffer, pauses the socket, and nothing more is read.
  req.resume();
  socket.destroySoon = function lingeringDestroySoon(this: Socket) {
    const start = socket.bytesRead;
    // The server's parser reads this socket natively (no 'data' events here), so bytes are counted by polling.
    const poll = setInterval(() => {
      if (socket.bytesRead - start > maxBytes) stop();
    }, 50);
    const timer = setTimeout(() => stop(), maxMs);
    const stop = () => {
      clearInterval(poll);
      clearTimeout(timer);
      socket.destroy();
    };
    socket.once('end', stop);
    socket.once('close', stop);
    // The whole body has arrived (and was discarded): nothing more to wait for.
    if (req.readableEnded) stop();
    else req.once('end', stop);
    socket.end();
  };
}

function listen(server: http.Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(args as [number, string]), () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startApi(opts: ApiOptions): Promise<ApiServer> {
  const { control, log } = opts;
  const maxBody = opts.maxBodyBytes ?? 16 * 1024;
  const headersTimeout = opts.headersTimeoutMs ?? 10_000;
  const requestTimeout = Math.max(opts.requestTimeoutMs ?? 30_000, headersTimeout);
  const maxStreams = opts.maxEventStreams ?? 16;
  const conflict = new Set(opts.conflictCodes ?? DEFAULT_CONFLICT_CODES);
  const tokenHash = opts.tcp ? createHash('sha256').update(opts.tcp.token).digest() : undefined;
  if (opts.tcp && opts.tcp.token.length < 16) {
    throw new LanderError('ERR_API_TOKEN', 'Cannot start the TCP status API: the token must have at least 16 characters', { data: { length: opts.tcp.token.length } });
  }

  const registry = new Registry();
  const mRequests = registry.counter({ name: 'lander_api_requests_total', help: 'Status API requests answered, by status code.', labelNames: ['code'], maxSeries: 50 });
  const mStreams = registry.gauge({ name: 'lander_api_event_streams', help: 'Open /events streams.' });
  const mDropped = registry.counter({ name: 'lander_api_events_dropped_total', help: 'Progress events not sent to an /events client that did not keep up.' });
  const mSlow = registry.counter({ name: 'lander_api_event_streams_closed_slow_total', help: '/events streams closed because the client did not read.' });
  mStreams.set({}, 0);
  mDropped.inc({}, 0);
  mSlow.inc({}, 0);
  const streams = new Set<EventStream>();
  const stats: ApiStats = { requests: 0, eventStreams: 0, droppedEvents: 0, slowClosed: 0 };

  async function runAction(res: ServerResponse, okStatus: number, action: () => Promise<unknown>): Promise<void> {
    try {
      sendJson(res, okStatus, await action());
    } catch (err) {
      const code = err instanceof LanderError ? err.code : 'ERR_UNEXPECTED';
      const status = conflict.has(code) ? 409 : 500;
      if (status === 500) log.error({ event: 'api.action-failed', err }, (err as Error).message);
      sendError(res, status, code, (err as Error).message);
    }
  }

  function openEvents(req: IncomingMessage, res: ServerResponse): void {
    if (streams.size >= maxStreams) {
      sendError(res, 503, 'ERR_TOO_MANY_STREAMS', `Cannot open an event stream: ${maxStreams} are open already`, { 'retry-after': '5' });
      return;
    }
    const stream = new EventStream(res, {
      ...(opts.sseMaxBufferedBytes !== undefined ? { maxBufferedBytes: opts.sseMaxBufferedBytes } : {}),
      ...(opts.ssePingIntervalMs !== undefined ? { pingIntervalMs: opts.ssePingIntervalMs } : {}),
      onDrop: () => { stats.droppedEvents++; mDropped.inc(); },
      onSlowClose: () => {
        stats.slowClosed++;
        mSlow.inc();
        log.warn({ event: 'api.events-slow', dropped: stream.dropped }, 'closed an event stream whose client does not read');
      },
    });
    streams.add(stream);
    stats.eventStreams = streams.size;
    mStreams.set({}, streams.size);
    // A throwing listener would surface inside the daemon's emitter; keep faults here.
    const unsubscribe = control.subscribe((e) => {
      try {
        stream.send(e);
      } catch (err) {
        log.warn({ event: 'api.events-error', err }, 'cannot send an event; closing the stream');
        stream.close();
      }
    });
    res.once('close', () => {
      unsubscribe();
      stream.close();
      streams.delete(stream);
      stats.eventStreams = streams.size;
      mStreams.set({}, streams.size);
    });
    req.socket.setTimeout(0);
  }

  const routes: Record<string, Partial<Record<string, Handler>>> = {
    '/status': { GET: (_q, res) => sendJson(res, 200, control.status()) },
    '/healthz': {
      GET: (_q, res) => {
        const h = control.health();
        sendJson(res, h.ok ? 200 : 503, h);
      },
    },
    '/events': { GET: openEvents },
    '/metrics': {
      GET: (_q, res) => {
        let text = control.metricsText();
        if (text.length > 0 && !text.endsWith('\n')) text += '\n';
        text += registry.render();
        res.writeHead(200, { 'content-type': METRICS_TYPE, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      },
    },
    '/check': { POST: (_q, res) => runAction(res, 202, () => control.check()) },
    '/restart': { POST: (_q, res) => runAction(res, 200, () => control.restart()) },
    '/rollback': { POST: (_q, res) => runAction(res, 200, () => control.rollback()) },
  };

  /** Reads and discards the body up to the cap; false (and a 413 sent) when it is larger. */
  function drainBody(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const tooLarge = () => {
      // Closing is the only way to stop a client mid-body; the 413 goes first.
      lingerOnClose(req);
      sendError(res, 413, 'ERR_BODY_TOO_LARGE', `Cannot accept a request body over ${maxBody} bytes`, { connection: 'close' });
      return false;
    };
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBody) return Promise.resolve(tooLarge());
    return new Promise((resolve) => {
      let n = 0;
      const onData = (chunk: Buffer) => {
        n += chunk.length;
        if (n > maxBody) {
          req.off('data', onData);
          resolve(tooLarge());
        }
      };
      req.on('data', onData);
      req.once('end', () => resolve(n <= maxBody));
      req.once('error', () => resolve(false));
    });
  }

  function handler(secure: boolean) {
    return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const t0 = performance.now();
      let pathname = '';
      res.once('close', () => {
        stats.requests++;
        mRequests.inc({ code: String(res.statusCode) });
        log.debug({ event: 'api.request', method: clip(req.method, 16), path: clip(pathname), status: res.statusCode, ms: Math.round((performance.now() - t0) * 10) / 10, via: secure ? 'unix' : 'tcp' }, 'api request');
      });
      try {
        try {
          pathname = new URL(req.url ?? '/', 'http://lander').pathname;
        } catch {
          pathname = clip(req.url);
          sendError(res, 400, 'ERR_BAD_REQUEST', 'Cannot parse the request target');
          return;
        }
        if (!secure && !tokenMatches(req.headers.authorization, tokenHash!)) {
          // Act on nothing an unauthenticated client sends: answer, discard the rest, close.
          lingerOnClose(req);
          sendError(res, 401, 'ERR_UNAUTHORIZED', 'Cannot serve this request: it needs "Authorization: Bearer <token>"', { 'www-authenticate': 'Bearer', connection: 'close' });
          return;
        }
        if (!(await drainBody(req, res))) return;
        const route = routes[pathname];
        if (!route) return sendError(res, 404, 'ERR_NOT_FOUND', `No such endpoint: ${clip(pathname, 100)}`);
        const h = route[req.method ?? ''];
        if (!h) return sendError(res, 405, 'ERR_METHOD_NOT_ALLOWED', `Cannot ${clip(req.method, 16)} ${pathname}; allowed: ${Object.keys(route).join(', ')}`, { allow: Object.keys(route).join(', ') });
        await h(req, res);
      } catch (err) {
        log.error({ event: 'api.request-failed', err, path: clip(pathname) }, (err as Error).message);
        sendError(res, 500, 'ERR_UNEXPECTED', (err as Error).message);
      }
    };
  }

  const sockets = new Set<Socket>();
  let ready = false;
  function makeServer(secure: boolean): http.Server {
    const server = http.createServer(
      {
        headersTimeout: headersTimeout,
        requestTimeout: requestTimeout,
        // Node checks the two timeouts on this period (30 s by default): make it fine enough to honour them.
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
        maxHeaderSize: 16 * 1024,
      },
      handler(secure),
    );
    server.maxConnections = opts.maxConnections ?? 64;
    server.keepAliveTimeout = 5_000;
    server.on('connection', (s: Socket) => {
      // Until the socket file is chmod-ed, a connection may come from anyone: refuse it.
      if (!ready) {
        s.destroy();
        return;
      }
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    server.on('clientError', (err: NodeJS.ErrnoException, s: Socket) => {
      log.debug({ event: 'api.client-error', code: err.code }, 'bad or timed-out client');
      if (!s.writable || err.code === 'ECONNRESET') {
        s.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      s.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      s.destroySoon();
    });
    return server;
  }

  await prepareSocketPath(opts.socketPath);
  const unixServer = makeServer(true);
  let tcpServer: http.Server | undefined;
  let ino: number | undefined;
  try {
    await listen(unixServer, opts.socketPath);
    await chmod(opts.socketPath, 0o600);
    ino = await verifySocket(opts.socketPath);
    if (opts.tcp) {
      tcpServer = makeServer(false);
      await listen(tcpServer, opts.tcp.port, opts.tcp.host);
      const addr = (tcpServer.address() as AddressInfo).address;
      if (!isLoopbackAddress(addr)) {
        throw new LanderError('ERR_API_NOT_LOOPBACK', `Cannot serve the status API on ${addr}: TCP is allowed on loopback only`, { data: { host: opts.tcp.host, address: addr } });
      }
    }
    ready = true;
  } catch (err) {
    await closeServers();
    throw err;
  }

  async function closeServers(): Promise<void> {
    ready = false;
    for (const s of streams) s.close();
    const closing = [unixServer, tcpServer].filter((s): s is http.Server => !!s?.listening).map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const s of sockets) s.destroySoon();
    // An idle keep-alive socket or a reader stuck mid-response must not hold shutdown.
    const force = setTimeout(() => { for (const s of sockets) s.destroy(); }, 1000);
    await Promise.all(closing);
    clearTimeout(force);
    await removeOwnSocket(opts.socketPath, ino);
  }

  const tcpPort = tcpServer ? (tcpServer.address() as AddressInfo).port : undefined;
  log.info({ event: 'api.listening', socket: opts.socketPath, ...(tcpPort !== undefined ? { tcp: `${opts.tcp!.host}:${tcpPort}` } : {}) }, 'status API listening');
  let closed: Promise<void> | undefined;
  return {
    socketPath: opts.socketPath,
    ...(tcpPort !== undefined ? { tcpPort } : {}),
    stats: () => ({ ...stats }),
    close: () => (closed ??= closeServers()),
  };
}
