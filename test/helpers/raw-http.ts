/**
 * Plain HTTP/1.1 requests to a unix socket or a loopback port, for API
 * tests: node:http's client (no agent, so no pooled sockets), and a raw
 * socket for clients that misbehave on purpose.
 */
import http from 'node:http';
import net from 'node:net';

export type Target = { socketPath: string } | { port: number; host?: string };

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: () => any;
}

export function request(target: Target, method: string, path: string, opts: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...('socketPath' in target ? { socketPath: target.socketPath } : { host: target.host ?? '127.0.0.1', port: target.port }), method, path, headers: opts.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function connect(target: Target): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = 'socketPath' in target ? net.connect(target.socketPath) : net.connect(target.port, target.host ?? '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything a raw socket receives until it closes (errors such as EPIPE are noted, not thrown). */
export function collect(s: net.Socket): Promise<{ text: string; error?: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let text = '';
    let error: string | undefined;
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ text, ...(error ? { error } : {}), ms: Date.now() - t0 }));
  });
}
