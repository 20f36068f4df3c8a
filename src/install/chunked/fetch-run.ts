/**
 * Streams one run of neighbouring members of a chunked archive and hands
 * them to the inflate pool in batches of about `batchBytes`. Each batch is
 * assembled once, straight from the socket's chunks, in a buffer over its
 * own ArrayBuffer, so the pool transfers it to a worker instead of copying
 * it again; nothing is written to disk here. A range that breaks resumes
 * from the first member not yet whole; the members that did arrive whole
 * are handed on first.
 */
import { backoffDelay, sleep } from '../../base/backoff.ts';
import { DownloadError, LanderError, hasCode } from '../../base/errors.ts';
import type { IndexMember } from './index-format.ts';
import type { RangeSource } from './range-source.ts';

/** A hard cap on range attempts per run even while each makes progress. */
const ATTEMPTS_PER_RUN = 50;

export interface RunFetchContext {
  component: string;
  version: string;
  /** Mirrors, in order: the next one after `retries + 1` failures in a row. */
  urls: string[];
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  members: readonly IndexMember[];
  source: RangeSource;
  signal: AbortSignal;
  batchBytes: number;
  /** The install's first failure elsewhere, if any: fetching stops at the next chunk. */
  failure(): unknown;
  /** Archive bytes that arrived (for progress). */
  received(n: number): void;
  /** Whole members `batch` (neighbours), their bytes `gz` from archive offset `gzOffset`. */
  dispatch(batch: number[], gz: Buffer, gzOffset: number): void;
  /** Resolves once the pool can take more (flat memory). */
  room(): Promise<void>;
  log(level: 'warn', event: string, fields: Record<string, unknown>, msg: string): void;
}

/** A buffer over its own ArrayBuffer (the pool can transfer it to a worker), not zero-filled: every byte is written before it is used. */
function ownBuffer(n: number): Buffer {
  const b = Buffer.allocUnsafeSlow(n);
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(new ArrayBuffer(n));
}

/** Fetches `members` (ascending; neighbours share one range) with as few ranges as a breaking server allows. */
export async function fetchRun(ctx: RunFetchContext, members: readonly number[]): Promise<void> {
  const ms = ctx.members;
  const endOf = (i: number) => ms[members[i]!]!.gzOffset + ms[members[i]!]!.gzLength;
  let next = 0; // index into members of the first member not yet handed on
  let failures = 0;
  for (let attempt = 0; next < members.length; attempt++) {
    if (attempt >= ATTEMPTS_PER_RUN) throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${ctx.component} ${ctx.version}: ${ATTEMPTS_PER_RUN} range attempts for one run`, { data: { component: ctx.component } });
    ctx.signal.throwIfAborted();
    const url = ctx.urls[Math.min(ctx.urls.length - 1, Math.floor(failures / (ctx.retries + 1)))]!;
    // Contiguous members from `next` form one range.
    let last = next;
    while (last + 1 < members.length && members[last + 1] === members[last]! + 1) last++;
    const start = ms[members[next]!]!.gzOffset;
    const end = endOf(last);
    const before = next;
    // The batch being filled: members [from, to) of `members`, bytes [at, at + buf.length) of the archive.
    let from = next;
    let to = next;
    let at = start;
    let buf = ownBuffer(0);
    let filled = 0;
    const open = () => {
      from = to = next;
      at = ms[members[from]!]!.gzOffset;
      while (to <= last && (to === from || endOf(to - 1) - at < ctx.batchBytes)) to++;
      buf = ownBuffer(endOf(to - 1) - at);
      filled = 0;
    };
    /** Hands on the members of the batch that arrived whole. */
    const flush = () => {
      let whole = from;
      while (whole < to && endOf(whole) - at <= filled) whole++;
      if (whole === from) return;
      const n = endOf(whole - 1) - at;
      const gz = n === buf.length ? buf : Buffer.from(buf.subarray(0, n)); // a cut batch: its whole members only
      ctx.dispatch(members.slice(from, whole), gz, at);
      next = whole;
      from = whole;
    };
    open();
    try {
      const body = await ctx.source.range(url, start, end, ctx.signal);
      let received = start;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (ctx.failure()) throw ctx.failure();
        ctx.received(chunk.length);
        const take = Math.min(chunk.length, end - received);
        for (let off = 0; off < take;) {
          const n = Math.min(take - off, buf.length - filled);
          chunk.copy(buf, filled, off, off + n);
          filled += n;
          off += n;
          received += n;
          if (filled === buf.length) {
            flush();
            if (next <= last) open();
          }
        }
        await ctx.room();
      }
      if (next <= last) throw new Error(`the range ended at ${received}, before member ${members[next]} ended`);
    } catch (err) {
      flush(); // what arrived whole is kept
      if (err === ctx.failure() || ctx.signal.aborted || hasCode(err, 'ERR_RANGE_UNSUPPORTED') || (err instanceof LanderError && !(err instanceof DownloadError))) throw err;
      failures = next > before ? 0 : failures + 1;
      if (failures > (ctx.retries + 1) * ctx.urls.length) {
        throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${ctx.component} ${ctx.version}: ${(err as Error).message}`, { cause: err, data: { component: ctx.component, url } });
      }
      const delayMs = backoffDelay({ attempt: Math.max(1, failures), initialMs: ctx.backoffInitialMs, maxMs: ctx.backoffMaxMs });
      ctx.log('warn', 'install.chunked-retry', { url, attempt: attempt + 1, delayMs, reason: (err as Error).message, member: members[next] }, 'retrying the range from the first member not yet received');
      await sleep(delayMs, ctx.signal);
    }
  }
}

/**
 * Splits the members to fetch into runs of neighbours, and long runs into
 * segments of about `segmentBytes` at member boundaries, so several
 * connections can fetch one long run side by side.
 */
export function segmentRuns(members: readonly IndexMember[], todo: readonly number[], segmentBytes: number): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let curStart = 0;
  for (const m of todo) {
    const mem = members[m]!;
    const prev = cur[cur.length - 1];
    if (prev === undefined || prev + 1 !== m || mem.gzOffset + mem.gzLength - curStart > segmentBytes) {
      if (cur.length > 0) out.push(cur);
      cur = [];
      curStart = mem.gzOffset;
    }
    cur.push(m);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
