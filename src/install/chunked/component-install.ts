/**
 * The chunked install of one component as the install path calls it: the
 * request built from the spec and config, reuse sources from the store,
 * progress in the one pass's event shape. Returns undefined when the index
 * cannot be downloaded at all (the caller then runs the one pass); an index
 * that downloads but fails its checks is an error, never a fallback.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { ComponentSpec, Config } from '../../config/schema.ts';
import { DigestUnavailableError, DownloadError, hasCode } from '../../base/errors.ts';
import { fetchText } from '../../fetch/fetch-text.ts';
import { parseSha256Sidecar } from '../../fetch/sidecar.ts';
import type { Logger } from '../../report/log.ts';
import type { ProgressEvent } from '../../../workers/protocol.ts';
import type { ChunkedDone, ChunkedInstallContext, ChunkedInstallRequest } from './chunked-install.ts';
import type { RegistryRangeSourceOptions } from './registry-range-source.ts';
import { runChunkedInWorker } from './worker-client.ts';
import { removeResume, resumePaths } from './resume-tree.ts';
import { reuseSources, type SourceStore } from './store-sources.ts';

export interface ChunkedComponentInput {
  spec: ComponentSpec & { index: NonNullable<ComponentSpec['index']> };
  sha256: string;
  stagingDir: string;
  store: SourceStore & { partPath(sha256: string): string };
  config: Config;
  log: Logger;
  signal: AbortSignal;
  onProgress?(e: ProgressEvent): void;
  /** An `oci://` component: its ranges come through the registries, with their auth (built in the worker). */
  registry?: RegistryRangeSourceOptions;
}

/** Where the fetched members of `sha256` wait for a resume. */
export function chunkPartPath(store: { partPath(sha256: string): string }, sha256: string): string {
  return store.partPath(sha256).replace(/\.part$/, '.chunks');
}

/** Drops the kept members once the entry is committed. */
export async function removeChunkPart(store: { partPath(sha256: string): string }, sha256: string): Promise<void> {
  const p = chunkPartPath(store, sha256);
  await rm(p, { force: true }); // the fetched members, as versions before the resume tree kept them
  await removeResume(resumePaths(p));
}

export async function installChunkedComponent(input: ChunkedComponentInput): Promise<ChunkedDone | undefined> {
  const { spec, config, log } = input;
  const d = config.download;
  const jobId = path.basename(input.stagingDir);
  let last = 0;
  try {
    const index = { url: spec.index.url, sha256: await indexDigest(input), ...(spec.index.size !== undefined ? { size: spec.index.size } : {}) };
    // The whole install runs in a worker, as the one pass does: the main thread supervises the server.
    // From HTTP(S) mirrors or, for an oci:// component, through the registries with their auth.
    const req: ChunkedInstallRequest = {
      component: spec.name, version: spec.version, urls: spec.urls, sha256: input.sha256, ...(spec.size !== undefined ? { size: spec.size } : {}),
      index, stagingDir: input.stagingDir, partPath: chunkPartPath(input.store, input.sha256), limits: config.limits,
      sources: await reuseSources(input.store, spec.name), connections: d.connections, retries: d.retries, backoffInitialMs: d.backoffInitial, backoffMaxMs: d.backoffMax,
    };
    const ctx: Omit<ChunkedInstallContext, 'source'> = {
      signal: input.signal,
      onProgress(p) {
        const now = performance.now();
        if (now - last < 100 && p.fetchedBytes < p.fetchTotal) return;
        last = now;
        input.onProgress?.({ type: 'progress', jobId, bytes: p.fetchedBytes, total: p.fetchTotal, downloadedBytes: p.fetchedBytes, rate: 0, connections: 1, extractedBytes: 0, reusedBytes: p.reusedBytes });
      },
      log(level, event, fields, msg) {
        log[level]({ event, component: spec.name, version: spec.version, jobId, ...fields }, msg);
      },
    };
    return await runChunkedInWorker(req, ctx, { connectTimeoutMs: d.connectTimeout, idleTimeoutMs: d.idleTimeout }, input.registry);
  } catch (err) {
    // Only an index that cannot be had at all falls back; the first range request has not been made then.
    const url = (err as { data?: { url?: string } }).data?.url;
    // A server without ranges: nothing was written yet that the one pass would need.
    if (hasCode(err, 'ERR_RANGE_UNSUPPORTED')) {
      log.warn({ event: 'install.index-unavailable', component: spec.name, version: spec.version, url, reason: (err as Error).message }, 'the server does not answer ranges; installing in one pass');
      return undefined;
    }
    if ((err instanceof DownloadError || err instanceof DigestUnavailableError) && (url === spec.index.url || url === spec.index.sha256Url)) {
      log.warn({ event: 'install.index-unavailable', component: spec.name, version: spec.version, url: spec.index.url, reason: err.message }, 'the chunk index cannot be downloaded; installing in one pass');
      return undefined;
    }
    throw err;
  }
}

/** The index's trusted digest: pinned, or from its sidecar (`<hex>  <name>.index`). */
async function indexDigest(input: ChunkedComponentInput): Promise<string> {
  const { index } = input.spec;
  if (index.sha256) return index.sha256;
  const url = index.sha256Url!;
  const d = input.config.download;
  let text: string;
  try {
    text = await fetchText(url, { connectTimeoutMs: d.connectTimeout, idleTimeoutMs: d.idleTimeout, retries: d.retries, backoffInitialMs: d.backoffInitial, backoffMaxMs: d.backoffMax, signal: input.signal });
  } catch (cause) {
    if (hasCode(cause, 'ERR_ABORTED')) throw cause;
    throw new DigestUnavailableError(`Cannot verify the chunk index of ${input.spec.name} ${input.spec.version}: its sidecar ${url} could not be fetched (${(cause as Error).message})`, { cause, data: { component: input.spec.name, url } });
  }
  return parseSha256Sidecar(text, path.posix.basename(new URL(index.url).pathname));
}
