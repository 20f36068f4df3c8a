/**
 * The status API's routes: one small handler per route, in one table
 * (`path → method → handler`). Each handler gets the request, the response
 * and the context the server built (the daemon's control, the API's own
 * metrics and open event streams). api.ts looks the route up and answers
 * 404/405 itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DaemonControl } from './daemon-model.ts';
import { LanderError } from '../base/errors.ts';
import { EventStream } from './event-stream.ts';
import type { Logger } from './log.ts';
import type { Registry } from './metrics.ts';
import { METRICS_TYPE, sendError, sendJson } from './api-http.ts';

export type Handler = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => Promise<void> | void;

export type RouteTable = Record<string, Partial<Record<string, Handler>>>;

export interface ApiStats {
  requests: number;
  eventStreams: number;
  droppedEvents: number;
  slowClosed: number;
}

export interface RouteContext {
  control: DaemonControl;
  log: Logger;
  /** The API's own metrics, appended to the daemon's on /metrics. */
  registry: Registry;
  metrics: { streams: { set(l: object, v: number): void }; dropped: { inc(l?: object): void }; slow: { inc(l?: object): void } };
  stats: ApiStats;
  streams: Set<EventStream>;
  maxStreams: number;
  sse: { maxBufferedBytes?: number; pingIntervalMs?: number };
  /** Error codes answered 409 (a refusal, not a fault). */
  conflict: ReadonlySet<string>;
}

/** Runs an action of the daemon; a refusal is 409, anything else 500 (and logged). */
async function runAction(res: ServerResponse, ctx: RouteContext, okStatus: number, action: () => Promise<unknown>): Promise<void> {
  try {
    sendJson(res, okStatus, await action());
  } catch (err) {
    const code = err instanceof LanderError ? err.code : 'ERR_UNEXPECTED';
    const status = ctx.conflict.has(code) ? 409 : 500;
    if (status === 500) ctx.log.error({ event: 'api.action-failed', err }, (err as Error).message);
    sendError(res, status, code, (err as Error).message);
  }
}

const status: Handler = (_q, res, ctx) => sendJson(res, 200, ctx.control.status());

const healthz: Handler = (_q, res, ctx) => {
  const h = ctx.control.health();
  sendJson(res, h.ok ? 200 : 503, h);
};

const metrics: Handler = (_q, res, ctx) => {
  let text = ctx.control.metricsText();
  if (text.length > 0 && !text.endsWith('\n')) text += '\n';
  text += ctx.registry.render();
  res.writeHead(200, { 'content-type': METRICS_TYPE, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

const events: Handler = (req, res, ctx) => {
  if (ctx.streams.size >= ctx.maxStreams) {
    sendError(res, 503, 'ERR_TOO_MANY_STREAMS', `Cannot open an event stream: ${ctx.maxStreams} are open already`, { 'retry-after': '5' });
    return;
  }
  const { stats, streams } = ctx;
  const stream = new EventStream(res, {
    ...(ctx.sse.maxBufferedBytes !== undefined ? { maxBufferedBytes: ctx.sse.maxBufferedBytes } : {}),
    ...(ctx.sse.pingIntervalMs !== undefined ? { pingIntervalMs: ctx.sse.pingIntervalMs } : {}),
    onDrop: () => { stats.droppedEvents++; ctx.metrics.dropped.inc(); },
    onSlowClose: () => {
      stats.slowClosed++;
      ctx.metrics.slow.inc();
      ctx.log.warn({ event: 'api.events-slow', dropped: stream.dropped }, 'closed an event stream whose client does not read');
    },
  });
  streams.add(stream);
  stats.eventStreams = streams.size;
  ctx.metrics.streams.set({}, streams.size);
  // A throwing listener would surface inside the daemon's emitter; keep faults here.
  const unsubscribe = ctx.control.subscribe((e) => {
    try {
      stream.send(e);
    } catch (err) {
      ctx.log.warn({ event: 'api.events-error', err }, 'cannot send an event; closing the stream');
      stream.close();
    }
  });
  res.once('close', () => {
    unsubscribe();
    stream.close();
    streams.delete(stream);
    stats.eventStreams = streams.size;
    ctx.metrics.streams.set({}, streams.size);
  });
  req.socket.setTimeout(0);
};

/** `POST /unmark?component=C&version=V`: the two names are bounded and checked before they reach the store. */
const unmark: Handler = (req, res, ctx) => {
  const q = new URL(req.url ?? '/', 'http://lander').searchParams;
  const component = q.get('component') ?? '';
  const version = q.get('version') ?? '';
  const ok = (s: string) => s.length > 0 && s.length <= 200 && !/[\x00-\x1f\x7f]/.test(s);
  if (!ok(component) || !ok(version)) return sendError(res, 400, 'ERR_BAD_REQUEST', 'Cannot unmark: expected ?component=NAME&version=VERSION (1 to 200 printable characters each)');
  return runAction(res, ctx, 200, () => ctx.control.unmark(component, version));
};

export const ROUTES: RouteTable = {
  '/status': { GET: status },
  '/healthz': { GET: healthz },
  '/events': { GET: events },
  '/metrics': { GET: metrics },
  '/check': { POST: (_q, res, ctx) => runAction(res, ctx, 202, () => ctx.control.check()) },
  '/restart': { POST: (_q, res, ctx) => runAction(res, ctx, 200, () => ctx.control.restart()) },
  '/rollback': { POST: (_q, res, ctx) => runAction(res, ctx, 200, () => ctx.control.rollback()) },
  '/unmark': { POST: unmark },
};
