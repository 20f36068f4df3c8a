/**
 * One manifest component for this machine (pure): the variant it fits
 * (targeting), then whether it takes that version yet (staged rollout). A
 * machine outside the rollout, or that no variant fits, keeps what it has
 * installed; the result always says why, for `status`.
 *
 * Hook: the desired-specs step maps a manifest through `manifestForMachine`
 * before combining it with the config; nothing else needs to know.
 */
import type { ManifestChoice, ManifestComponent, ParsedManifest } from '../config/manifest.ts';
import type { Config } from '../config/schema.ts';
import { inRollout } from './rollout.ts';
import { chooseVariant } from './targeting.ts';
import type { MachineFacts } from './machine-facts.ts';

/** What this machine runs of a component now (the current generation's entry). */
export interface InstalledComponent {
  version: string;
  sha256: string;
  /** The URL it was installed from (the store entry's `source`). */
  source: string;
}

export interface MachineContext {
  facts: MachineFacts;
  /** By component name. */
  installed: Record<string, InstalledComponent>;
  /** Components whose version the config pins: rollout does not apply to them (a pin wins). */
  pinned?: ReadonlySet<string>;
}

/** Why a component's manifest entry was not taken as is; shown in `status`. */
export interface MachineNote {
  component: string;
  kind: 'variant' | 'waiting' | 'refused';
  /** e.g. "waiting for rollout: bucket 63, rollout 25%", "variant cu128 (nvidiaDriver >=570.26)". */
  message: string;
  variant?: string;
  bucket?: number;
  percent?: number;
}

export type MachineDecision =
  /** Install this (a variant chosen, in the rollout, or no rollout). */
  | { take: ManifestComponent; note?: MachineNote }
  /** Not now: keep what is installed (`keep`), or nothing installed to keep and no variant fits. */
  | { keep?: ManifestComponent; note: MachineNote };

/**
 * The decision for one component.
 *
 * A machine outside the rollout that has nothing installed for the component
 * takes the version anyway: it has no version to keep, and a staged rollout
 * protects machines that run something from a bad release, not empty ones.
 *
 * @example decideForMachine('cuda-libs', manifest.choices['cuda-libs'], { facts, installed: {} })
 */
export function decideForMachine(name: string, entry: ManifestComponent | ManifestChoice, ctx: MachineContext): MachineDecision {
  const installed = ctx.installed[name];
  const keep = installed ? keepOf(installed) : undefined;
  let chosen: ManifestComponent;
  let note: MachineNote | undefined;
  if ('variants' in entry) {
    const c = chooseVariant(name, entry.variants, ctx.facts);
    if ('reason' in c) {
      const refused: MachineNote = { component: name, kind: 'refused', message: `Cannot install ${name}: ${c.reason}${keep ? `; keeping ${keep.version}` : ''}` };
      return keep ? { keep, note: refused } : { note: refused };
    }
    const { name: variant, requires, ...rest } = c.variant;
    chosen = { ...rest, ...(rest.rollout ?? entry.rollout ? { rollout: rest.rollout ?? entry.rollout } : {}) };
    const why = Object.entries(requires ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
    note = { component: name, kind: 'variant', variant, message: `variant ${variant}${why ? ` (${why})` : ''}` };
  } else {
    chosen = entry;
  }
  if (ctx.pinned?.has(name) || !keep || keep.version === chosen.version) return { take: chosen, ...(note ? { note } : {}) };
  const r = inRollout({ machineId: ctx.facts.machineId, component: name, version: chosen.version, rollout: chosen.rollout });
  if (r.take) return { take: chosen, ...(note ? { note } : {}) };
  return {
    keep,
    note: {
      component: name, kind: 'waiting', message: `${r.reason}; keeping ${keep.version}${note?.variant ? ` (variant ${note.variant} has ${chosen.version})` : ` (the manifest has ${chosen.version})`}`,
      ...(note?.variant ? { variant: note.variant } : {}), ...(r.bucket !== undefined ? { bucket: r.bucket } : {}), percent: chosen.rollout?.percent ?? 100,
    },
  };
}

/** The installed version as a manifest component: the planner then keeps it (same version, same digest). */
function keepOf(i: InstalledComponent): ManifestComponent {
  return { version: i.version, urls: [i.source], sha256: i.sha256 };
}

/**
 * The manifest as this machine should read it: variants resolved, versions
 * outside the rollout replaced by the installed ones; plain components only.
 * Components with nothing to install are left out, with a `refused` note.
 */
export function manifestForMachine(m: ParsedManifest, ctx: MachineContext): { manifest: ParsedManifest; notes: MachineNote[] } {
  const components: Record<string, ManifestComponent> = {};
  const notes: MachineNote[] = [];
  const entries: [string, ManifestComponent | ManifestChoice][] = [...Object.entries(m.components), ...Object.entries(m.choices ?? {})];
  for (const [name, entry] of entries) {
    const d = decideForMachine(name, entry, ctx);
    if (d.note) notes.push(d.note);
    const use = 'take' in d ? d.take : d.keep;
    if (use) components[name] = use;
  }
  const { choices: _, ...rest } = m;
  return { manifest: { ...rest, components }, notes };
}

/**
 * The one call the desired-specs step makes: the manifest as this machine
 * reads it (versions the config pins are not held back by a rollout), the
 * notes for `status`, and the components no variant fits with nothing
 * installed to keep (each a problem, with its reason, unless the config pins
 * a version of its own).
 *
 * @example const { manifest, notes, refused } = machineView(config, lastGoodManifest, { facts, installed });
 */
export function machineView(config: Pick<Config, 'components'>, parsed: ParsedManifest | undefined, machine?: Omit<MachineContext, 'pinned'>): { manifest?: ParsedManifest; notes: MachineNote[]; refused: Map<string, string> } {
  if (!parsed) return { notes: [], refused: new Map() };
  const pinned = new Set(Object.entries(config.components).flatMap(([n, c]) => (c.version !== undefined ? [n] : [])));
  const { manifest, notes } = manifestForMachine(parsed, { facts: machine?.facts ?? { os: process.platform, arch: process.arch }, installed: machine?.installed ?? {}, pinned });
  const refused = new Map(notes.filter((n) => n.kind === 'refused' && !manifest.components[n.component]).map((n) => [n.component, n.message]));
  return { manifest, notes, refused };
}
