/**
 * The expected SHA-256 of a component's archive: pinned in the config, or
 * read from its `.sha256` sidecar. A sidecar that cannot be fetched or read
 * fails the install; lander never installs unverified.
 */
import path from 'node:path';
import type { ComponentSpec, DownloadConfig } from '../config/schema.ts';
import { DigestUnavailableError, hasCode } from '../base/errors.ts';
import { fetchText } from './fetch-text.ts';
import { parseSha256Sidecar } from './sidecar.ts';

export async function resolveDigest(spec: ComponentSpec, dl: DownloadConfig, signal?: AbortSignal): Promise<string> {
  if (spec.sha256) return spec.sha256;
  const url = spec.sha256Url!;
  let text: string;
  try {
    text = await fetchText(url, {
      connectTimeoutMs: dl.connectTimeout,
      idleTimeoutMs: dl.idleTimeout,
      retries: dl.retries,
      backoffInitialMs: dl.backoffInitial,
      backoffMaxMs: dl.backoffMax,
      ...(signal ? { signal } : {}),
    });
  } catch (cause) {
    if (hasCode(cause, 'ERR_ABORTED')) throw cause;
    throw new DigestUnavailableError(`Cannot verify ${spec.name} ${spec.version}: its SHA-256 sidecar ${url} could not be fetched (${(cause as Error).message}); nothing was installed`, {
      cause,
      data: { component: spec.name, version: spec.version, url },
    });
  }
  const archiveName = path.posix.basename(new URL(spec.urls[0]!).pathname);
  try {
    return parseSha256Sidecar(text, archiveName);
  } catch (cause) {
    throw new DigestUnavailableError(`Cannot verify ${spec.name} ${spec.version}: ${(cause as Error).message} (from ${url}); nothing was installed`, {
      cause,
      data: { component: spec.name, version: spec.version, url },
    });
  }
}
