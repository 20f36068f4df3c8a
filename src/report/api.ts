/**
 * The status API: `GET /status`, `GET /healthz`, `GET /events` (SSE), `GET /metrics`,
 * `POST /check|/restart|/rollback|/unmark` (the table in api-routes.ts), served by node:http on a unix socket
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
import { createHash } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { DaemonControl } from './daemon-model.ts';
import { LanderError } from '../base/errors.ts';
import type { EventStream } from './event-stream.ts';
import type { Logger } from './log.ts';
import { Registry } from './metrics.ts';
import { isLoopbackAddress, prepareSocketPath, removeOwnSocket, verifySocket } from './api-socket.ts';
import { clip, drainBody, lingerOnClose, listen, sendError, tokenMatches } from './api-http.ts';
import { ROUTES, type ApiStats, type RouteContext, type RouteTable } from './api-routes.ts';

export type { ApiStats };

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
  /** The routes served. @default ROUTES */
  routes?: RouteTable;
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
  const routes = opts.routes ?? ROUTES;
  const ctx: RouteContext = {
    control, log, registry, stats, streams, maxStreams, conflict,
    metrics: { streams: mStreams, dropped: mDropped, slow: mSlow },
    sse: { ...(opts.sseMaxBufferedBytes !== undefined ? { maxBufferedBytes: opts.sseMaxBufferedBytes } : {}), ...(opts.ssePingIntervalMs !== undefined ? { pingIntervalMs: opts.ssePingIntervalMs } : {}) },
  };

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
        if (!(await drainBody(req, res, maxBody))) return;
        const route = routes[pathname];
        if (!route) return sendError(res, 404, 'ERR_NOT_FOUND', `No such endpoint: ${clip(pathname, 100)}`);
        const h = route[req.method ?? ''];
        if (!h) return sendError(res, 405, 'ERR_METHOD_NOT_ALLOWED', `Cannot ${clip(req.method, 16)} ${pathname}; allowed: ${Object.keys(route).join(', ')}`, { allow: Object.keys(route).join(', ') });
        await h(req, res, ctx);
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
