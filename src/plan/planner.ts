/**
 * Pure planning: desired components (see desired.ts) against what the store
 * holds, to what must be fetched, which generation to land, and whether the
 * server must restart. No I/O; tested with hand-built inputs.
 */
import type { ComponentSpec } from '../config/schema.ts';
import type { Generation, Selected, StoreEntry } from '../store/state.ts';

export type { Selected } from '../store/state.ts';

export type ComponentAction =
  /** The store holds the desired archive (perhaps under an earlier version): nothing to fetch. */
  | { component: string; action: 'keep'; version: string; entry: StoreEntry }
  /** Needs its digest resolved and, unless the store has that digest, a download. */
  | { component: string; action: 'fetch'; spec: ComponentSpec }
  /** The desired version failed on the server before; keep what runs now (if anything), under the version it runs as. */
  | { component: string; action: 'skip-bad'; version: string; fallback?: Selected };


export interface PlanInput {
  components: ComponentSpec[];
  entries: StoreEntry[];
  current?: Generation;
  bad: Record<string, string[]>;
}

/**
 * True when `entry` is the archive that `spec` asks for, judged without the
 * network. A store entry is identified by (component, digest): with a pinned
 * digest the version does not matter; with a sidecar, the digest is known
 * only for a (version, URL) the entry was already reached by.
 */
export function entrySatisfies(entry: StoreEntry, spec: ComponentSpec): boolean {
  if (entry.component !== spec.name) return false;
  if (spec.sha256) return entry.sha256 === spec.sha256;
  const known = [{ version: entry.version, source: entry.source }, ...(entry.aliases ?? [])];
  return known.some((k) => k.version === spec.version && spec.urls.includes(k.source));
}

export function planComponents(input: PlanInput): ComponentAction[] {
  const order = [...input.components].sort(serverFirst);
  return order.map((spec): ComponentAction => {
    const inCurrent = input.current?.components[spec.name];
    const candidates = input.entries.filter((e) => entrySatisfies(e, spec));
    const entry = candidates.find((e) => e.dir === inCurrent?.entry) ?? candidates.at(-1);
    if (input.bad[spec.name]?.includes(spec.version)) {
      const e = inCurrent ? input.entries.find((x) => x.dir === inCurrent.entry) : undefined;
      const fallback = e && inCurrent ? { component: spec.name, version: inCurrent.version, entry: e } : undefined;
      return { component: spec.name, action: 'skip-bad', version: spec.version, ...(fallback ? { fallback } : {}) };
    }
    if (entry) return { component: spec.name, action: 'keep', version: spec.version, entry };
    return { component: spec.name, action: 'fetch', spec };
  });
}

/** The server core goes first: it is small and it is what restarts the app. */
function serverFirst(a: ComponentSpec, b: ComponentSpec): number {
  const rank = (s: ComponentSpec) => (s.name === 'server' ? 0 : 1);
  return rank(a) - rank(b);
}

export interface LandingPlan {
  /** Components whose digest differs from the current generation (added or changed). */
  changed: string[];
  /** Components in the current generation that the new one drops. */
  removed: string[];
  /** The server must restart: a changed or removed component is marked `restart`, or nothing ran before. */
  restart: boolean;
}

/** What landing `selection` (one entry per component) changes against `current`: judged by digest, not version label. */
export function planLanding(selection: readonly Pick<StoreEntry, 'component' | 'sha256'>[], specs: ComponentSpec[], current?: Generation): LandingPlan {
  const changed = selection.filter((e) => current?.components[e.component]?.sha256 !== e.sha256).map((e) => e.component);
  const names = new Set(selection.map((e) => e.component));
  const removed = current ? Object.keys(current.components).filter((n) => !names.has(n)) : [];
  const restartOf = (n: string) => specs.find((s) => s.name === n)?.restart ?? true;
  const restart = !current || changed.some(restartOf) || removed.length > 0;
  return { changed, removed, restart };
}
