/**
 * One component into the store: resolve its digest, recognise an archive the
 * store already holds (by component and digest), otherwise run the one-pass
 * install worker and commit the verified tree as a read-only store entry.
 */
import path from 'node:path';
import type { ComponentSpec, Config } from '../config/schema.ts';
import { resolveDigest } from '../fetch/digest.ts';
import { ociChunkedSpec, ociInstallSource, ociRequestFields, withTokenRenewal } from '../fetch/oci/install-source.ts';
import type { Logger } from '../report/log.ts';
import type { StoreEntry } from '../store/state.ts';
import type { Store } from '../store/store.ts';
import { installChunkedComponent, removeChunkPart } from './chunked/component-install.ts';
import { removePart } from './part-file.ts';
import { runInstallWorker } from './worker-client.ts';
import type { ProgressEvent } from '../../workers/protocol.ts';

/** Where a job is: waiting in the queue, resolving its digest, downloading (and extracting), committing to the store. */
export type JobPhase = 'queued' | 'digest' | 'download' | 'commit';

export interface InstallContext {
  config: Config;
  store: Store;
  log: Logger;
  /** Every progress event, with the spec (and so the version) it belongs to. */
  onProgress?(spec: ComponentSpec, e: ProgressEvent): void;
  onPhase?(spec: ComponentSpec, phase: JobPhase): void;
  /** Minimum time between `download.progress` log lines per component. @default 5000 */
  logProgressEveryMs?: number;
}

export interface InstalledComponent {
  /** installed: downloaded now; reused: the store held this digest already (perhaps under another version). */
  status: 'installed' | 'reused';
  entry: StoreEntry;
  downloadedBytes?: number;
  reusedBytes?: number;
  durationMs: number;
}

export async function installComponent(spec: ComponentSpec, ctx: InstallContext, signal: AbortSignal): Promise<InstalledComponent> {
  const { store, config } = ctx;
  const t0 = performance.now();
  ctx.onPhase?.(spec, 'digest');
  // An oci:// component: the registry's manifest gives the digest, size, blob URLs and their auth.
  const oci = await ociInstallSource(spec, config, signal);
  const sha256 = oci?.sha256 ?? (await resolveDigest(spec, config.download, signal));
  // Its `.part` (or chunks) under downloads/ is in use from here on: a gc after another landing leaves it.
  const release = store.useDownload(sha256);
  try {
    return await installDigest(spec, ctx, signal, { sha256, oci, t0 });
  } finally {
    release();
  }
}

async function installDigest(spec: ComponentSpec, ctx: InstallContext, signal: AbortSignal, o: { sha256: string; oci: Awaited<ReturnType<typeof ociInstallSource>>; t0: number }): Promise<InstalledComponent> {
  const { store, log, config } = ctx;
  const { sha256, oci, t0 } = o;
  const existing = store.findEntry(spec.name, sha256);
  if (existing) {
    // Remember that this version resolves to this digest, so the next plan needs no sidecar.
    await store.recordAlias(existing, spec.version, spec.urls[0]!);
    log.info({ event: 'install.reused', component: spec.name, version: spec.version, sha256, entry: existing.dir, storedAs: existing.version }, 'archive already in the store');
    return { status: 'reused', entry: existing, durationMs: Math.round(performance.now() - t0) };
  }
  ctx.onPhase?.(spec, 'download');
  // The first progress of a job is logged at once, also in a lander started less than `every` ago.
  let lastLog = -Infinity;
  const every = ctx.logProgressEveryMs ?? 5000;
  let stagingDir = '';
  const install = (source: typeof oci) => {
    stagingDir = store.stagingPath(spec.name);
    return runInstallWorker(
    {
      type: 'install',
      jobId: path.basename(stagingDir),
      component: spec.name,
      version: spec.version,
      ...ociRequestFields(spec, source),
      sha256,
      partPath: store.partPath(sha256),
      stagingDir,
      download: {
        connectTimeoutMs: config.download.connectTimeout,
        idleTimeoutMs: config.download.idleTimeout,
        retries: config.download.retries,
        backoffInitialMs: config.download.backoffInitial,
        backoffMaxMs: config.download.backoffMax,
        connections: config.download.connections,
        segmentThresholdBytes: config.download.segmentThreshold,
        ...(config.download.segmentSize !== undefined ? { segmentBytes: config.download.segmentSize } : {}),
        ...(config.download.keepPart ? { keepPart: true } : {}),
      },
      limits: config.limits,
      disk: { expansionEstimate: config.disk.expansionEstimate, marginBytes: config.disk.margin },
    },
    {
      signal,
      onProgress(e) {
        ctx.onProgress?.(spec, e);
        const now = performance.now();
        if (now - lastLog >= every) {
          lastLog = now;
          log.info({ event: 'download.progress', component: spec.name, version: spec.version, bytes: e.bytes, total: e.total, rate: Math.round(e.rate) }, 'download progress');
        }
      },
      onLog(e) {
        log[e.level]({ event: e.event, component: spec.name, version: spec.version, ...e.fields }, e.msg);
      },
    },
    );
  };
  // Index known → chunked install (delta + parallel inflate); else, or when the index cannot be had, the one pass.
  // An oci:// component's index is its manifest's second layer, its ranges come through the registries.
  const chunkedInstall = (s: ComponentSpec & { index: NonNullable<ComponentSpec['index']> }, source?: typeof oci) => {
    stagingDir = store.stagingPath(spec.name);
    const d = config.download;
    const registry = source?.index ? { headers: source.headers, indexUrls: source.index.urls, connectTimeoutMs: d.connectTimeout, idleTimeoutMs: d.idleTimeout } : undefined;
    return installChunkedComponent({ spec: s, sha256, stagingDir, store, config, log, signal, onProgress: (e) => ctx.onProgress?.(spec, e), ...(registry ? { registry } : {}) });
  };
  const reauth = (reason: string) => log.warn({ event: 'download.reauth', component: spec.name, version: spec.version, reason }, 'the registry refused the token; getting a new one and resuming');
  let chunked: Awaited<ReturnType<typeof installChunkedComponent>>;
  if (spec.index && !oci) chunked = await chunkedInstall({ ...spec, index: spec.index });
  else if (oci?.index) {
    chunked = await withTokenRenewal(spec, config, oci, signal, (source) => {
      const s = ociChunkedSpec(spec, source);
      return s ? chunkedInstall(s, source) : Promise.resolve(undefined);
    }, reauth);
  }
  // A registry token that expired before a retry: a new one, and the download resumes from its .part.
  const done = chunked ?? await withTokenRenewal(spec, config, oci, signal, install, reauth);
  ctx.onPhase?.(spec, 'commit');
  const entry = await store.commitEntry({
    component: spec.name,
    version: spec.version,
    sha256,
    source: spec.urls[0]!,
    stagingDir,
    files: done.files,
    archiveBytes: done.bytes,
    extractedBytes: done.extractedBytes,
    ...(chunked ? { index: chunked.index } : {}),
  });
  // Only now, with the tree recorded in the store, are the archive's bytes no longer needed.
  await removePart(store.partPath(sha256));
  if (chunked) await removeChunkPart(store, sha256);
  const durationMs = Math.round(performance.now() - t0);
  log.info(
    { event: 'install.verified', component: spec.name, version: spec.version, sha256, bytes: done.bytes, downloadedBytes: done.downloadedBytes, reusedBytes: done.reusedBytes, extractedBytes: done.extractedBytes, files: done.files.length, durationMs, entry: entry.dir, ...('partBytes' in done ? { partBytes: done.partBytes } : {}), ...('spareWorker' in done && done.spareWorker !== undefined ? { spareWorker: done.spareWorker } : {}) },
    'component verified and stored',
  );
  return { status: 'installed', entry, downloadedBytes: done.downloadedBytes, reusedBytes: done.reusedBytes, durationMs };
}
