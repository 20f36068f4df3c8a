/**
 * One registry request with a small body back. GETs go through httpGet
 * (proxies, redirects, timeouts, as for archives); other methods (the
 * publisher's HEAD, POST, PUT, a token POST) through node:http, with a
 * socket timeout and no redirects (a registry answers them itself), through
 * the same HTTP(S)_PROXY / NO_PROXY as downloads (proxy.ts): plain http as
 * an absolute-URI request to the proxy, https in a CONNECT tunnel.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import { httpGet } from '../http-get.ts';
import { openTunnel, proxyAuthHeader, proxyFor } from '../proxy.ts';
import { readBounded } from '../read-bounded.ts';

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';
  url: string;
  headers?: Record<string, string>;
  /** A request body: bytes, or a factory (a re-sent request after an auth challenge needs a fresh stream). */
  body?: Buffer | (() => Readable);
  /** With a stream body: its length, sent as Content-Length. */
  bodyLength?: number;
  /** Largest response body read. @default 4 MiB */
  maxBytes?: number;
  signal?: AbortSignal;
  /** @default 15000 */
  connectTimeoutMs?: number;
  /** @default 30000 */
  idleTimeoutMs?: number;
}

export interface RegistryResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | undefined>;
  /** The URL that answered (after redirects, for GET). */
  url: string;
  body: Buffer;
}

export type Send = (req: RegistryRequest) => Promise<RegistryResponse>;

const DEFAULT_MAX = 4 * 1024 * 1024;

export const defaultSend: Send = async (req) => {
  if (req.method === 'GET' && req.body === undefined) {
    const res = await httpGet(req.url, {
      headers: req.headers ?? {}, ...(req.signal ? { signal: req.signal } : {}),
      ...(req.connectTimeoutMs !== undefined ? { connectTimeoutMs: req.connectTimeoutMs } : {}),
      ...(req.idleTimeoutMs !== undefined ? { idleTimeoutMs: req.idleTimeoutMs } : {}),
    });
    const { body } = await readBounded(res, req.maxBytes ?? DEFAULT_MAX, req.url);
    return { status: res.status, headers: res.headers, url: res.url, body };
  }
  return plainRequest(req);
};

async function plainRequest(req: RegistryRequest): Promise<RegistryResponse> {
  const u = new URL(req.url);
  const headers: Record<string, string | number> = { 'accept-encoding': 'identity', ...req.headers };
  if (Buffer.isBuffer(req.body)) headers['content-length'] = req.body.length;
  else if (req.body) headers['content-length'] = req.bodyLength ?? 0;
  else if (req.method === 'PUT' || req.method === 'POST' || req.method === 'PATCH') headers['content-length'] = 0;
  const proxy = proxyFor(u);
  // One request per tunnel: the socket is ours to close once the answer is read.
  const tunnel = proxy && u.protocol === 'https:' ? await openTunnel(proxy, u, req.connectTimeoutMs ?? 15_000, req.signal) : undefined;
  const start = (onResponse: (res: http.IncomingMessage) => void): http.ClientRequest => {
    const common = { method: req.method, agent: false as const, ...(req.signal ? { signal: req.signal } : {}) };
    if (!proxy) return (u.protocol === 'https:' ? https : http).request(u, { ...common, headers }, onResponse);
    if (!tunnel) return http.request({ ...common, host: proxy.hostname, port: proxy.port || 80, path: u.href, headers: { ...headers, host: u.host, ...proxyAuthHeader(proxy) } }, onResponse);
    // TLS to the registry is already up inside the tunnel: plain http speaks over it (no agent, or Node dials around it).
    return http.request({ method: req.method, ...(req.signal ? { signal: req.signal } : {}), host: u.hostname, port: u.port || 443, path: `${u.pathname}${u.search}`, headers: { ...headers, host: u.host, connection: 'close' }, createConnection: () => tunnel as tls.TLSSocket }, onResponse);
  };
  try {
    return await exchange(req, u, start);
  } finally {
    tunnel?.destroy();
  }
}

function exchange(req: RegistryRequest, u: URL, start: (onResponse: (res: http.IncomingMessage) => void) => http.ClientRequest): Promise<RegistryResponse> {
  return new Promise<RegistryResponse>((resolve, reject) => {
    const r = start((res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > (req.maxBytes ?? DEFAULT_MAX)) res.destroy(new Error(`the response to ${req.method} ${req.url} is over ${req.maxBytes ?? DEFAULT_MAX} bytes`));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const h: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(res.headers)) h[k] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ status: res.statusCode ?? 0, headers: h, url: req.url, body: Buffer.concat(chunks) });
      });
    });
    // One bound for connecting and for every silence after (the registry may take a while to verify a big blob's digest).
    r.setTimeout(Math.max(req.connectTimeoutMs ?? 15_000, req.idleTimeoutMs ?? 30_000), () => r.destroy(new Error(`no answer from ${u.host} to ${req.method} within the timeout`)));
    r.on('error', reject);
    if (Buffer.isBuffer(req.body)) r.end(req.body);
    else if (req.body) {
      const src = req.body();
      src.on('error', (err) => r.destroy(err));
      src.pipe(r);
    } else r.end();
  });
}
