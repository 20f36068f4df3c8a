/**
 * Where a chunked install gets byte ranges of the archive: a narrow
 * interface so a segmented, multi-connection fetcher can replace this one
 * (one `Range: bytes=a-b` GET per run, on src/fetch/http-get.ts) without the
 * installer changing. A body that breaks mid-way is the caller's to resume.
 */
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DownloadError } from '../../base/errors.ts';
import { httpGet, parseContentRange } from '../../fetch/http-get.ts';
import { readBounded } from '../../fetch/read-bounded.ts';

export interface RangeSource {
  /** The bytes [start, end) of `url`, streamed. */
  range(url: string, start: number, end: number, signal: AbortSignal): Promise<AsyncIterable<Buffer>>;
  /** A small whole file (the index), at most `maxBytes`. */
  whole(url: string, maxBytes: number, signal: AbortSignal): Promise<Buffer>;
}

export interface HttpRangeSourceOptions {
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Extra request headers for a URL (a registry's Authorization); dropped on a redirect to another origin. */
  headersFor?(url: string): Record<string, string> | undefined;
}

export function httpRangeSource(o: HttpRangeSourceOptions = {}): RangeSource {
  const t = { ...(o.connectTimeoutMs !== undefined ? { connectTimeoutMs: o.connectTimeoutMs } : {}), ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}) };
  return {
    async range(url, start, end, signal) {
      if (url.startsWith('file:')) return createReadStream(fileURLToPath(url), { start, end: end - 1, highWaterMark: 1 << 20 });
      const res = await httpGet(url, { ...t, signal, headers: { ...o.headersFor?.(url), range: `bytes=${start}-${end - 1}` } });
      const cr = parseContentRange(res.headers['content-range']);
      if (res.status !== 206 || cr?.start !== start || cr?.end !== end - 1) {
        res.body.destroy();
        throw new DownloadError(res.status === 206 || res.status === 200 ? 'ERR_RANGE_UNSUPPORTED' : 'ERR_HTTP_STATUS', `Cannot download bytes ${start}-${end - 1} of ${url}: the server answered HTTP ${res.status}${cr ? ` with the range ${cr.start}-${cr.end}` : ' without that range'}`, { data: { url, status: res.status, start, end } });
      }
      return res.body as AsyncIterable<Buffer>;
    },
    async whole(url, maxBytes, signal) {
      const headers = o.headersFor?.(url);
      const res = await httpGet(url, { ...t, signal, ...(headers ? { headers } : {}) });
      if (res.status !== 200) {
        res.body.destroy();
        throw new DownloadError('ERR_HTTP_STATUS', `Cannot download ${url}: the server answered HTTP ${res.status}`, { data: { url, status: res.status } });
      }
      const r = await readBounded(res, maxBytes, url);
      if (r.declared !== undefined && r.body.length !== r.declared) throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${url}: the body ended after ${r.body.length} of ${r.declared} bytes`, { data: { url } });
      return r.body;
    },
  };
}
