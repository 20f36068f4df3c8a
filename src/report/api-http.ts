/**
 * HTTP plumbing of the status API: JSON answers, the bearer-token check,
 * bounded strings for logs, a lingering close after an early answer, and a
 * capped body reader. No routes here (api-routes.ts), no servers (api.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export const JSON_TYPE = 'application/json; charset=utf-8';
export const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

/** SHA-256 both sides first so the comparison is constant-time whatever the lengths. */
export function tokenMatches(header: string | undefined, token: Buffer): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  return timingSafeEqual(given, token) && m !== null;
}

/** Bounded strings for logs: a hostile path or method must not bloat a log line. */
export function clip(s: string | undefined, n = 200): string {
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
export function lingerOnClose(req: IncomingMessage, maxMs = 2000, maxBytes = 4 * 1024 * 1024): void {
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

export function listen(server: http.Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(args as [number, string]), () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Reads and discards the body up to the cap; false (and a 413 sent) when it is larger. */
export function drainBody(req: IncomingMessage, res: ServerResponse, maxBody: number): Promise<boolean> {
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

