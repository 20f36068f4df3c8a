/**
 * The RangeSource of an `oci://` component: blob ranges through the
 * registries in mirror order, each with the Authorization its resolve found
 * (dropped when a registry redirects to blob storage on another origin). The
 * index is a small blob: a cache that cannot give it is passed over for the
 * next registry, as the archive's mirrors are.
 */
import { DownloadError, LanderError } from '../../base/errors.ts';
import { httpRangeSource, type RangeSource } from './range-source.ts';

export interface RegistryRangeSourceOptions {
  /** Per blob URL, its request headers (resolveOciSource's `headers`). */
  headers: Record<string, Record<string, string>>;
  /** The index blob on each registry, in mirror order. */
  indexUrls: string[];
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export function registryRangeSource(o: RegistryRangeSourceOptions): RangeSource {
  const http = httpRangeSource({
    ...(o.connectTimeoutMs !== undefined ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
    ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
    headersFor: (url) => o.headers[url],
  });
  return {
    range: (url, start, end, signal) => http.range(url, start, end, signal),
    async whole(url, maxBytes, signal) {
      const failures: Error[] = [];
      for (const u of [url, ...o.indexUrls.filter((x) => x !== url)]) {
        try {
          return await http.whole(u, maxBytes, signal);
        } catch (err) {
          // A registry that is down or answers an error: the next one. Anything else (a size cap, an abort) stops here.
          if (signal.aborted || (err instanceof LanderError && !(err instanceof DownloadError))) throw err;
          failures.push(err as Error);
        }
      }
      // Named by the first URL: the caller knows the index by it (and falls back to the one pass).
      throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download the chunk index ${url}: ${failures.length === 1 ? '' : 'no registry gave it: '}${failures.map((f) => f.message).join('; ')}`, { cause: failures.at(-1), data: { url } });
    },
  };
}
