/**
 * The desired components, computed once per reconcile from the config and the
 * last good manifest (pure). Everything downstream (planner, queue, install,
 * landing, garbage collection) works from the specs this returns, with their
 * versions carried along.
 */
import { configIndex, expandTemplate, type ComponentConfig, type ComponentSpec, type Config } from '../config/schema.ts';
import type { ManifestComponent, ParsedManifest } from '../config/manifest.ts';
import { isOciUrl } from '../fetch/oci/reference.ts';
import { machineView, type MachineContext, type MachineNote } from './for-machine.ts';

export interface DesiredSpecs {
  /** Complete components, ready for the planner, config components first in config order. */
  specs: ComponentSpec[];
  /** Components that cannot be installed as things stand; each is left out of `specs`, and while any is, nothing lands. */
  problems: { component: string; message: string }[];
  /** Per component, why the manifest's entry was not taken as is (variant chosen, waiting for rollout, refused). */
  notes: MachineNote[];
}

/**
 * The desired components: the config combined with a manifest.
 *
 * The rule, field by field (`version`, `url`, digest, `size`, `restart`):
 * - A field set in the config wins: it is a pin.
 * - The manifest supplies what the config leaves out.
 * - Components the manifest lists and the config does not are installed too.
 * - A component still missing its version, URL or digest is reported as a
 *   problem; the reconciler then lands nothing (landing the rest would drop it).
 * - Rollout and targeting (for-machine.ts) first turn the manifest into this
 *   machine's view of it: a variant chosen, a version held back, or refused.
 * - The manifest's URL, digest, size and restart belong to the manifest's
 *   version. When the config pins a different version, they are not used:
 *   the config must then give its own `url` (a `{version}` template) and its
 *   own digest source (`sha256` or `sha256Url`), or the component is a problem.
 *   A pinned digest (`sha256`) is taken as is, even when the version comes
 *   from the manifest: pin the version with it.
 *
 * `{version}` and `{url}` in the config's templates expand with the version
 * chosen here, whichever side supplied it.
 *
 * @example desiredSpecs(config, manifest).specs // → planComponents({ components: specs, ... })
 */
export function desiredSpecs(config: Config, parsed?: ParsedManifest, machine?: Omit<MachineContext, 'pinned'>): DesiredSpecs {
  // Rollout and targeting: the manifest as this machine reads it (src/plan/for-machine.ts).
  const { manifest, notes, refused } = machineView(config, parsed, machine);
  const names = [...Object.keys(config.components)];
  for (const n of [...Object.keys(manifest?.components ?? {}), ...refused.keys()]) if (!names.includes(n)) names.push(n);
  const specs: ComponentSpec[] = [];
  const problems: DesiredSpecs['problems'] = [];
  for (const name of names) {
    const no = refused.get(name);
    if (no !== undefined && config.components[name]?.version === undefined) {
      problems.push({ component: name, message: no });
      continue;
    }
    const r = combine(name, config.components[name] ?? {}, manifest?.components[name], manifest !== undefined);
    if (typeof r === 'string') problems.push({ component: name, message: r });
    else specs.push(r);
  }
  return { specs, problems, notes };
}

/** One component's spec, or why it cannot have one. */
function combine(name: string, c: ComponentConfig, m: ManifestComponent | undefined, haveManifest: boolean): ComponentSpec | string {
  const version = c.version ?? m?.version;
  if (version === undefined) {
    return haveManifest
      ? `Cannot install ${name}: the config sets no version and the manifest does not list it`
      : `Cannot install ${name}: the config sets no version and no manifest has been read yet`;
  }
  // The manifest's other fields describe its own version's archive only.
  const same = m !== undefined && m.version === version;
  const otherVersion = m !== undefined && !same ? ` (the manifest lists ${m.version}, whose URL and digest do not apply to ${version})` : '';
  const missing = !haveManifest ? ' (no manifest has been read yet)' : m === undefined ? ' (the manifest does not list it)' : otherVersion;

  let urls: string[];
  if (c.url !== undefined) urls = (Array.isArray(c.url) ? c.url : [c.url]).map((u) => expandTemplate(u, { version }));
  else if (same) urls = [...m.urls];
  else return `Cannot install ${name} ${version}: no URL; set "url" in the config${missing}`;

  const spec: ComponentSpec = { name, version, urls, restart: c.restart ?? (same ? m.restart : undefined) ?? true };
  if (c.sha256 !== undefined) spec.sha256 = c.sha256;
  else if (c.sha256Url !== undefined) spec.sha256Url = expandTemplate(c.sha256Url, { version, url: urls[0] });
  else if (same) spec.sha256 = m.sha256;
  else if (isOciUrl(urls[0]!)) { /* the registry's manifest gives the digest */ }
  else return `Cannot install ${name} ${version}: no digest; set "sha256" or "sha256Url" in the config${missing}`;

  const size = c.size ?? (same ? m.size : undefined);
  if (size !== undefined) spec.size = size;
  // The index names the archive digest it describes; the installer uses it only when that is the digest it trusts.
  const index = configIndex(c, version, urls[0]!) ?? (same && m.index ? { ...m.index } : undefined);
  if (index) spec.index = index;
  return spec;
}
