/**
 * One server-sent-events response: daemon events as `event:`/`data:` blocks,
 * a `: ping` comment now and then so proxies and clients see the line alive,
 * and a bound on what a slow reader can make the daemon hold in memory.
 *
 * A reader that falls behind by more than `maxBufferedBytes` loses progress
 * events (they are snapshots: the next one supersedes them; each loss is
 * counted). Any other event at that point closes the stream instead, because
 * silently losing a `landed` or `rollback` would leave the client with a
 * wrong picture; it reconnects and re-reads /status. A reader still over the
 * cap at two pings in a row is closed too.
 */
import type { ServerResponse } from 'node:http';
import type { DaemonEvent } from './daemon-model.ts';

/** `event: <type>\ndata: <json>\n\n`; JSON text has no raw newline, the type is stripped of any. */
export function formatSse(type: string, data: unknown): string {
  return `event: ${type.replace(/[\r\n]/g, '')}\ndata: ${JSON.stringify(data)}\n\n`;
}

export interface EventStreamOptions {
  /** Bytes queued for the client above which events are dropped or the stream closed. @default 262144 */
  maxBufferedBytes?: number;
  /** Time between `: ping` comments. @default 15000 */
  pingIntervalMs?: number;
  /** Called for each progress event dropped for this client. */
  onDrop?: () => void;
  /** Called once when the stream is closed because the client does not read. */
  onSlowClose?: () => void;
}

export class EventStream {
  readonly #res: ServerResponse;
  readonly #max: number;
  readonly #opts: EventStreamOptions;
  readonly #ping: ReturnType<typeof setInterval>;
  #overAtLastPing = false;
  #closed = false;
  /** Progress events dropped for this client. */
  dropped = 0;

  constructor(res: ServerResponse, opts: EventStreamOptions = {}) {
    this.#res = res;
    this.#opts = opts;
    this.#max = opts.maxBufferedBytes ?? 256 * 1024;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // A reverse proxy that buffers would hold progress back until the end.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    this.#ping = setInterval(() => this.#onPing(), opts.pingIntervalMs ?? 15_000);
    this.#ping.unref?.();
    res.once('close', () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes written but not yet taken by the client's socket. */
  buffered(): number {
    return Math.max(this.#res.writableLength, this.#res.socket?.writableLength ?? 0);
  }

  send(e: DaemonEvent): void {
    if (this.#closed) return;
    if (this.buffered() > this.#max) {
      if (e.type === 'progress') {
        this.dropped++;
        this.#opts.onDrop?.();
        return;
      }
      this.#slowClose();
      return;
    }
    this.#res.write(formatSse(e.type, e));
  }

  #onPing(): void {
    if (this.#closed) return;
    const over = this.buffered() > this.#max;
    if (over && this.#overAtLastPing) {
      this.#slowClose();
      return;
    }
    this.#overAtLastPing = over;
    if (!over) this.#res.write(': ping\n\n');
  }

  #slowClose(): void {
    this.#opts.onSlowClose?.();
    // destroy, not end: end() would wait behind the very bytes the client does not read.
    this.#res.destroy();
    this.close();
  }

  /** Stops pings; ends the response if still open (server shutdown). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ping);
    if (!this.#res.destroyed && !this.#res.writableEnded) this.#res.end();
  }
}
