/**
 * A small client of the status API for the CLI: over the unix socket (no
 * token) or loopback TCP (bearer token). Answers are bounded in size and
 * time; "nobody listens" becomes ERR_NO_DAEMON with a message saying how to
 * start the daemon.
 *
 * @example
 * const api = new ApiClient({ socketPath: '/var/lib/lander/lander.sock', root: '/var/lib/lander', configPath });
 * const status = await api.getJson<DaemonStatus>('/status');
 */
import http, { type IncomingMessage } from 'node:http';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import type { DaemonEvent } from '../report/daemon-model.ts';
import { asErrorCode } from '../base/error-codes.ts';
import { LanderError } from '../base/errors.ts';

export interface ApiClientOptions {
  /** Unix socket of the daemon. One of `socketPath` and `tcp` is required. */
  socketPath?: string;
  tcp?: { host: string; port: number; token: string };
  /** The daemon's root and config file, named in the ERR_NO_DAEMON message. */
  root?: string;
  configPath?: string;
  /** Time a GET may take, connect to last byte. @default 15000 */
  getTimeoutMs?: number;
  /** Time a POST may take: a restart waits for the server to stop and turn healthy. @default 300000 */
  postTimeoutMs?: number;
  /** Largest answer accepted. @default 16777216 */
  maxResponseBytes?: number;
}

/** The default socket of a config: `api.socket`, else `<root>/lander.sock`. */
export function socketPathOf(config: Pick<Config, 'root' | 'api'>): string {
  return config.api.socket ?? path.join(config.root, 'lander.sock');
}

/** An SSE line longer than this means the peer is not our daemon, or broken. */
const MAX_SSE_LINE = 1024 * 1024;

export class ApiClient {
  readonly #o: ApiClientOptions;

  constructor(o: ApiClientOptions) {
    if (!o.socketPath && !o.tcp) throw new TypeError('ApiClient: expected `socketPath` or `tcp`');
    this.#o = o;
  }

  get where(): string {
    return this.#o.socketPath ?? `${this.#o.tcp!.host}:${this.#o.tcp!.port}`;
  }

  #noDaemon(cause: unknown): LanderError {
    const where = this.#o.socketPath ? `no socket at ${this.#o.socketPath}` : `nothing listens on ${this.where}`;
    return new LanderError('ERR_NO_DAEMON', `No lander daemon is running for ${this.#o.root ?? '(unknown root)'} (${where}); start it with "lander run --config ${this.#o.configPath ?? '<file>'}"`, { cause, data: { where: this.where } });
  }

  #request(method: string, urlPath: string, timeoutMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    signal?.throwIfAborted();
    const o = this.#o;
    return new Promise((resolve, reject) => {
      const req = http.request({
        method,
        path: urlPath,
        ...(o.socketPath ? { socketPath: o.socketPath } : { host: o.tcp!.host, port: o.tcp!.port }),
        headers: { accept: 'application/json', ...(o.tcp && !o.socketPath ? { authorization: `Bearer ${o.tcp.token}` } : {}), ...(method === 'POST' ? { 'content-length': '0' } : {}) },
        ...(signal ? { signal } : {}),
      });
      const timer = setTimeout(() => req.destroy(new LanderError('ERR_API_TIMEOUT', `Cannot ${method} ${urlPath} on ${this.where}: no answer within ${timeoutMs} ms`)), timeoutMs);
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(this.#noDaemon(err));
        else if (err instanceof LanderError) reject(err);
        else if (err.name === 'AbortError') reject(err);
        else reject(new LanderError('ERR_API', `Cannot ${method} ${urlPath} on ${this.where}: ${err.message}`, { cause: err }));
      });
      req.end();
    });
  }

  async #body(res: IncomingMessage, what: string, deadline: number): Promise<string> {
    const max = this.#o.maxResponseBytes ?? 16 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(() => res.destroy(new LanderError('ERR_API_TIMEOUT', `Cannot read the answer to ${what}: too slow`)), Math.max(0, deadline - Date.now()));
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > max) {
          res.destroy();
          throw new LanderError('ERR_API', `Cannot read the answer to ${what}: larger than ${max} bytes`);
        }
        chunks.push(c);
      }
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async #json<T>(method: string, urlPath: string, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    const res = await this.#request(method, urlPath, timeoutMs, signal);
    const what = `${method} ${urlPath}`;
    const text = await this.#body(res, what, deadline);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (cause) {
      throw new LanderError('ERR_API', `Cannot read the answer to ${what}: status ${res.statusCode}, not JSON (${text.slice(0, 100)})`, { cause });
    }
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return body as T;
    const e = (body as { error?: { code?: unknown; message?: unknown } }).error;
    const code = asErrorCode(e?.code, 'ERR_API');
    const message = typeof e?.message === 'string' ? e.message : `status ${status}`;
    throw new LanderError(code, message, { data: { status, path: urlPath } });
  }

  /** GET a JSON endpoint; an `{error}` answer becomes a LanderError with its code and `data.status`. */
  getJson<T>(urlPath: string, signal?: AbortSignal): Promise<T> {
    return this.#json<T>('GET', urlPath, this.#o.getTimeoutMs ?? 15_000, signal);
  }

  /** GET a JSON endpoint whose status code is part of the answer (`/healthz`: 200 or 503). */
  async getJsonWithStatus<T>(urlPath: string, signal?: AbortSignal): Promise<{ status: number; body: T }> {
    const t = this.#o.getTimeoutMs ?? 15_000;
    const res = await this.#request('GET', urlPath, t, signal);
    const text = await this.#body(res, `GET ${urlPath}`, Date.now() + t);
    try {
      return { status: res.statusCode ?? 0, body: JSON.parse(text) as T };
    } catch (cause) {
      throw new LanderError('ERR_API', `Cannot read the answer to GET ${urlPath}: status ${res.statusCode}, not JSON (${text.slice(0, 100)})`, { cause });
    }
  }

  /** POST with an empty body (the actions take no arguments). */
  post<T>(urlPath: string, signal?: AbortSignal): Promise<T> {
    return this.#json<T>('POST', urlPath, this.#o.postTimeoutMs ?? 300_000, signal);
  }

  /** GET a text endpoint such as /metrics. */
  async getText(urlPath: string, signal?: AbortSignal): Promise<string> {
    const t = this.#o.getTimeoutMs ?? 15_000;
    const res = await this.#request('GET', urlPath, t, signal);
    const text = await this.#body(res, `GET ${urlPath}`, Date.now() + t);
    if ((res.statusCode ?? 0) >= 300) throw new LanderError('ERR_API', `Cannot GET ${urlPath}: status ${res.statusCode}`, { data: { status: res.statusCode } });
    return text;
  }

  /**
   * Streams `/events`, calling `onEvent` for each event, until `signal`
   * aborts (resolves) or the daemon ends the stream (resolves) or fails (rejects).
   */
  async events(onEvent: (e: DaemonEvent) => void, signal: AbortSignal): Promise<void> {
    let res: IncomingMessage;
    try {
      res = await this.#request('GET', '/events', this.#o.getTimeoutMs ?? 15_000, signal);
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    if (res.statusCode !== 200) {
      const text = await this.#body(res, 'GET /events', Date.now() + 5_000);
      throw new LanderError('ERR_API', `Cannot follow events on ${this.where}: status ${res.statusCode} ${text.slice(0, 200)}`, { data: { status: res.statusCode } });
    }
    const parser = new SseParser((type, data) => {
      let e: unknown;
      try {
        e = JSON.parse(data);
      } catch {
        return; // not ours to interpret; the stream goes on
      }
      if (e && typeof e === 'object' && typeof (e as { type?: unknown }).type === 'string') onEvent(e as DaemonEvent);
      else if (type) onEvent({ ...(e as object), type } as DaemonEvent);
    });
    res.setEncoding('utf8');
    try {
      for await (const chunk of res as AsyncIterable<string>) parser.push(chunk);
    } catch (err) {
      if (signal.aborted) return;
      throw new LanderError('ERR_API', `Lost the event stream from ${this.where}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * Incremental parser of `text/event-stream`: `event:` and `data:` fields,
 * comments and `retry:` ignored, an event dispatched at each blank line.
 */
export class SseParser {
  #buf = '';
  #type = '';
  #data: string[] = [];
  #size = 0;
  readonly #on: (type: string, data: string) => void;

  constructor(on: (type: string, data: string) => void) {
    this.#on = on;
  }

  push(chunk: string): void {
    this.#buf += chunk;
    let i: number;
    // Split on LF only and drop a trailing CR: a CRLF cut between two chunks must not make an empty line.
    while ((i = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 1);
      this.#line(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    if (this.#buf.length + this.#size > MAX_SSE_LINE) throw new LanderError('ERR_API', `Cannot parse the event stream: an event is longer than ${MAX_SSE_LINE} bytes`);
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length > 0) this.#on(this.#type, this.#data.join('\n'));
      this.#type = '';
      this.#data = [];
      this.#size = 0;
      return;
    }
    if (line.startsWith(':')) return;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#type = value;
    else if (field === 'data') {
      this.#data.push(value);
      this.#size += value.length;
    }
  }
}
