/**
 * Brings every configured component to its desired version: plans, resolves
 * digests, runs one install worker per missing component through the job
 * queue, commits verified trees to the store, and builds the generation to
 * land. Landing it (swap, restart) is the caller's: `land()` below, or the
 * daemon with its supervisor.
 */
import path from 'node:path';
import type { Config, ComponentSpec } from '../config/schema.ts';
import { hasCode, LanderError } from '../base/errors.ts';
import type { Logger } from '../report/log.ts';
import { planComponents, planLanding, type LandingPlan } from './planner.ts';
import { JobQueue } from './queue.ts';
import type { Generation, StoreEntry } from '../store/state.ts';
import type { Store } from '../store/store.ts';
import { resolveDigest } from '../fetch/digest.ts';
import { runInstallWorker } from '../install/worker-client.ts';
import { removePart } from '../install/part-file.ts';
import { installChunkedComponent, removeChunkPart } from '../install/chunked/component-install.ts';
import type { ProgressEvent } from '../../workers/protocol.ts';

export interface ComponentOutcome {
  component: string;
  version: string;
  /** kept: already installed; installed: downloaded now; reused: same digest already in the store; skipped-bad: version failed on the server before. */
  status: 'kept' | 'installed' | 'reused' | 'skipped-bad' | 'failed';
  entry?: StoreEntry;
  error?: Error;
  downloadedBytes?: number;
  reusedBytes?: number;
  durationMs?: number;
}

export interface InstallResult {
  components: ComponentOutcome[];
  /** One store entry per component, to land as a generation; undefined when a component failed. */
  selection?: StoreEntry[];
  /** What landing it changes; `changed` empty means it is already current. */
  landing?: LandingPlan;
  errors: Error[];
}

export interface InstallOptions {
  config: Config;
  /** The desired components (from the config alone, or merged with a manifest). */
  specs: ComponentSpec[];
  store: Store;
  log: Logger;
  queue?: JobQueue;
  signal?: AbortSignal;
  onProgress?(component: string, e: ProgressEvent): void;
  /** Called as each component's outcome is known. */
  onOutcome?(o: ComponentOutcome): void;
  /** Minimum time between `download.progress` log lines per component. @default 5000 */
  logProgressEveryMs?: number;
  /**
   * A component whose desired version went bad fails the install instead of
   * keeping the version that runs now: with a signed manifest, that older
   * version came from another manifest, and one manifest binds all its components.
   * @default false
   */
  noFallback?: boolean;
}

export async function installAll(opts: InstallOptions): Promise<InstallResult> {
  const { config, store, log } = opts;
  const queue = opts.queue ?? new JobQueue({ concurrency: config.download.concurrency });
  const specs = opts.specs;
  const byName = new Map(specs.map((s) => [s.name, s]));
  const actions = planComponents({ components: specs, entries: store.state.entries, current: store.current(), bad: store.state.bad });
  const outcomes = await Promise.all(
    actions.map((a, i) => decide(a, i).then((o) => {
      opts.onOutcome?.(o);
      return o;
    })),
  );
  async function decide(a: (typeof actions)[number], i: number): Promise<ComponentOutcome> {
    const spec = byName.get(a.component)!;
    if (a.action === 'keep') return { component: a.component, version: spec.version, status: 'kept', entry: a.entry };
    if (a.action === 'skip-bad') {
      log.warn({ event: 'install.skip-bad', component: a.component, version: a.version, keeping: opts.noFallback ? undefined : a.fallback?.version }, 'desired version failed on the server before; not retrying it until the version changes');
      if (a.fallback && !opts.noFallback) return { component: a.component, version: a.fallback.version, status: 'skipped-bad', entry: a.fallback };
      const why = a.fallback ? `; the manifest binds all its components, so ${a.fallback.version}, which runs now, is not combined with the rest of it` : ' and nothing else is installed for it';
      const error = new LanderError('ERR_BAD_VERSION', `Cannot install ${a.component} ${a.version}: it failed on the server before${why}`, { data: { component: a.component, version: a.version } });
      return { component: a.component, version: a.version, status: 'failed', error };
    }
    const key = `${spec.version}|${spec.sha256 ?? spec.sha256Url}|${spec.urls.join(' ')}`;
    try {
      return await queue.submit({ component: spec.name, key, priority: actions.length - i, run: (signal) => fetchComponent(spec, opts, anySignal(signal, opts.signal)) });
    } catch (err) {
      if (hasCode(err, 'ERR_ABORTED')) log.info({ event: 'install.aborted', component: spec.name, version: spec.version, reason: (err as Error).message }, 'install aborted; the partial download stays for a resume');
      else log.error({ event: 'install.failed', component: spec.name, version: spec.version, err }, `cannot install ${spec.name} ${spec.version}`);
      return { component: spec.name, version: spec.version, status: 'failed', error: err as Error };
    }
  }
  const errors = outcomes.flatMap((o) => (o.error ? [o.error] : []));
  if (errors.length > 0) return { components: outcomes, errors };
  const selection = outcomes.map((o) => o.entry!);
  return { components: outcomes, selection, landing: planLanding(selection, specs, store.current()), errors };
}

/**
 * The generation made of exactly `selection`: an existing one, or a new one
 * built now. Callers serialize this with landings, so two builds of the same
 * selection never race.
 */
export async function ensureGeneration(store: Store, selection: StoreEntry[], log: Logger): Promise<Generation> {
  const existing = store.findGeneration(selection);
  if (existing) return existing;
  const t0 = performance.now();
  const built = await store.createGeneration(selection);
  log.info({ event: 'generation.built', generation: built.generation.id, files: built.stats.files, linked: built.stats.linked, copied: built.stats.copied, durationMs: Math.round(performance.now() - t0) }, 'generation built');
  return built.generation;
}

async function fetchComponent(spec: ComponentSpec, opts: InstallOptions, signal: AbortSignal): Promise<ComponentOutcome> {
  const { store, log, config } = opts;
  const t0 = performance.now();
  const sha256 = await resolveDigest(spec, config.download, signal);
  const existing = store.findEntry(spec.name, sha256);
  if (existing) {
    log.info({ event: 'install.reused', component: spec.name, version: spec.version, sha256, entry: existing.dir }, 'archive already in the store');
    return { component: spec.name, version: spec.version, status: 'reused', entry: existing };
  }
  const stagingDir = store.stagingPath(spec.name);
  // The first progress of a job is logged at once, also in a lander started less than `every` ago.
  let lastLog = -Infinity;
  const every = opts.logProgressEveryMs ?? 5000;
  // Index known → chunked install (delta + parallel inflate); else, or when the index cannot be had, the one pass.
  const chunked = spec.index ? await installChunkedComponent({ spec: { ...spec, index: spec.index }, sha256, stagingDir, store, config, log, signal, ...(opts.onProgress ? { onProgress: (e: ProgressEvent) => opts.onProgress!(spec.name, e) } : {}) }) : undefined;
  const done = chunked ?? await runInstallWorker(
    {
      type: 'install',
      jobId: path.basename(stagingDir),
      component: spec.name,
      version: spec.version,
      urls: spec.urls,
      sha256,
      ...(spec.size !== undefined ? { maxBytes: spec.size } : {}),
      partPath: store.partPath(sha256),
      stagingDir,
      download: {
        connectTimeoutMs: config.download.connectTimeout,
        idleTimeoutMs: config.download.idleTimeout,
        retries: config.download.retries,
        backoffInitialMs: config.download.backoffInitial,
        backoffMaxMs: config.download.backoffMax,
      },
      limits: config.limits,
      disk: { expansionEstimate: config.disk.expansionEstimate, marginBytes: config.disk.margin },
    },
    {
      signal,
      onProgress(e) {
        opts.onProgress?.(spec.name, e);
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
    { event: 'install.verified', component: spec.name, version: spec.version, sha256, bytes: done.bytes, downloadedBytes: done.downloadedBytes, reusedBytes: done.reusedBytes, extractedBytes: done.extractedBytes, files: done.files.length, durationMs, entry: entry.dir },
    'component verified and stored',
  );
  return { component: spec.name, version: spec.version, status: 'installed', entry, downloadedBytes: done.downloadedBytes, reusedBytes: done.reusedBytes, durationMs };
}

/** Builds (or finds) the result's generation, swaps `current` to it and collects garbage. For use without a supervisor. */
export async function land(result: InstallResult, opts: { store: Store; log: Logger; keepGenerations: number; markGood: boolean }): Promise<Generation | undefined> {
  const { store } = opts;
  if (!result.selection) return undefined;
  const g = await ensureGeneration(store, result.selection, opts.log);
  if (store.state.current !== g.id) await store.swap(g.id);
  if (opts.markGood) await store.setStatus(g.id, 'good');
  await store.gc(opts.keepGenerations, result.selection);
  return g;
}

function anySignal(a: AbortSignal, b?: AbortSignal): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}
