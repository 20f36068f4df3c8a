/**
 * Reads a small response body (a sidecar, a manifest) into memory, refusing
 * more than `maxBytes`, declared or actual. A short body is the caller's to
 * judge (retry or fail), so it is returned with the declared length.
 */
import { DownloadError } from '../base/errors.ts';
import type { HttpResponse } from './http-get.ts';

export interface BoundedBody {
  body: Buffer;
  /** Content-Length, when the server sent one. */
  declared?: number;
}

/** @param what how the message names the download, e.g. the URL or "the manifest <url>" */
export async function readBounded(res: HttpResponse, maxBytes: number, what: string): Promise<BoundedBody> {
  const tooBig = (size?: number) => new DownloadError('ERR_SIZE_LIMIT', `Cannot download ${what}: the body is ${size === undefined ? 'over' : `${size} bytes, over`} the ${maxBytes}-byte cap for a small file`, {
    data: { url: res.url, maxBytes, ...(size === undefined ? {} : { size }) },
  });
  const declared = Number(res.headers['content-length'] ?? NaN);
  if (declared > maxBytes) {
    res.body.destroy();
    throw tooBig(declared);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > maxBytes) {
      res.body.destroy();
      throw tooBig();
    }
    chunks.push(chunk);
  }
  return { body: Buffer.concat(chunks), ...(Number.isFinite(declared) ? { declared } : {}) };
}
