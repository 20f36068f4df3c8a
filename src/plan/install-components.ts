/**
 * Brings every desired component into the store: plans against what the
 * store holds, runs one job per missing component through the queue, and
 * returns the selection to land (one entry per component, with the version
 * it lands as) or the failures. Landing is the reconciler's.
 */
import type { ComponentSpec, Config } from '../config/schema.ts';
import { hasCode, LanderError } from '../base/errors.ts';
import { installComponent, type InstallContext } from '../install/install-component.ts';
import type { Logger } from '../report/log.ts';
import type { Selected, StoreEntry } from '../store/state.ts';
import type { Store } from '../store/store.ts';
import { planComponents, type ComponentAction } from './planner.ts';
import { JobQueue } from './queue.ts';

export interface ComponentOutcome {
  component: string;
  /** The version this outcome is about: the desired one, or for skipped-bad the one kept. */
  version: string;
  /** kept: already in the store; installed: downloaded now; reused: same digest already in the store; skipped-bad: version failed on the server before. */
  status: 'kept' | 'installed' | 'reused' | 'skipped-bad' | 'failed';
  entry?: StoreEntry;
  error?: Error;
  downloadedBytes?: number;
  reusedBytes?: number;
  durationMs?: number;
}

export interface InstallResult {
  components: ComponentOutcome[];
  /** What to land, one per component; undefined when a component failed. */
  selection?: Selected[];
  errors: Error[];
}

export interface InstallComponentsOptions extends Omit<InstallContext, 'config'> {
  config: Config;
  /** The desired components, computed once for this reconcile (desired.ts). */
  specs: ComponentSpec[];
  queue: JobQueue;
  signal?: AbortSignal;
  /** Called as each component's outcome is known. */
  onOutcome?(o: ComponentOutcome): void;
  /**
   * A component whose desired version went bad fails the install instead of
   * keeping the version that runs now: with a signed manifest, that older
   * version came from another manifest, and one manifest binds all its components.
   * @default false
   */
  noFallback?: boolean;
}

export async function installComponents(opts: InstallComponentsOptions): Promise<InstallResult> {
  const { store, log, specs, queue } = opts;
  const byName = new Map(specs.map((s) => [s.name, s]));
  const actions = planComponents({ components: specs, entries: store.state.entries, current: store.current(), bad: store.state.bad });
  const outcomes = await Promise.all(
    actions.map((a, i) => decide(a, actions.length - i).then((o) => {
      opts.onOutcome?.(o);
      return o;
    })),
  );

  async function decide(a: ComponentAction, priority: number): Promise<ComponentOutcome> {
    const spec = byName.get(a.component)!;
    if (a.action === 'keep') return { component: a.component, version: a.version, status: 'kept', entry: a.entry };
    if (a.action === 'skip-bad') return skipBad(a, opts, log);
    // Equal keys join a job already queued or running; another key supersedes it.
    const key = `${spec.version}|${spec.sha256 ?? spec.sha256Url}|${spec.urls.join(' ')}`;
    try {
      opts.onPhase?.(spec, 'queued');
      const r = await queue.submit({ component: spec.name, key, priority, run: (signal) => installComponent(spec, opts, anySignal(signal, opts.signal)) });
      return { component: spec.name, version: spec.version, ...r };
    } catch (err) {
      if (hasCode(err, 'ERR_ABORTED')) log.info({ event: 'install.aborted', component: spec.name, version: spec.version, reason: (err as Error).message }, 'install aborted; the partial download stays for a resume');
      else log.error({ event: 'install.failed', component: spec.name, version: spec.version, err }, `cannot install ${spec.name} ${spec.version}`);
      return { component: spec.name, version: spec.version, status: 'failed', error: err as Error };
    }
  }

  const errors = outcomes.flatMap((o) => (o.error ? [o.error] : []));
  if (errors.length > 0) return { components: outcomes, errors };
  const selection = outcomes.map((o): Selected => ({ component: o.component, version: o.version, entry: o.entry! }));
  return { components: outcomes, selection, errors };
}

function skipBad(a: Extract<ComponentAction, { action: 'skip-bad' }>, opts: InstallComponentsOptions, log: Logger): ComponentOutcome {
  log.warn({ event: 'install.skip-bad', component: a.component, version: a.version, keeping: opts.noFallback ? undefined : a.fallback?.version }, `desired version failed on the server before; not retrying it (lander unmark ${a.component} ${a.version} clears the mark)`);
  if (a.fallback && !opts.noFallback) return { component: a.component, version: a.fallback.version, status: 'skipped-bad', entry: a.fallback.entry };
  const why = a.fallback ? `; the manifest binds all its components, so ${a.fallback.version}, which runs now, is not combined with the rest of it` : ' and nothing else is installed for it';
  const error = new LanderError('ERR_BAD_VERSION', `Cannot install ${a.component} ${a.version}: it failed on the server before${why}`, { data: { component: a.component, version: a.version } });
  return { component: a.component, version: a.version, status: 'failed', error };
}

function anySignal(a: AbortSignal, b?: AbortSignal): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}
