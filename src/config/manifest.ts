/**
 * Release manifests (pure): lander's own JSON format and voicebox's
 * `cuda-libs.json`, parsed and validated into one shape, and the rule that
 * combines a manifest with the config into the specs the installer works from.
 * No I/O; src/manifest-poller.ts fetches, this file judges.
 */
import { z } from 'zod';
import { COMPONENT_NAME, VERSION_PATTERN, configIndex, expandTemplate, type ComponentConfig, type ComponentSpec, type Config } from './schema.ts';
import { ManifestError } from '../base/errors.ts';

/** One component as a manifest states it: concrete URLs (already absolute) and a digest. */
export interface ManifestComponent {
  version: string;
  /** Mirrors, tried in order; relative URLs in the document are resolved against the manifest's URL. */
  urls: string[];
  /** Lower-case hex SHA-256 of the archive. */
  sha256: string;
  /** Exact archive size in bytes, when the manifest states it; used as the download's size cap. */
  size?: number;
  /** Whether landing this component restarts the server. */
  restart?: boolean;
  /** The chunk index of a chunked archive (README "Chunked archives"); its digest is bound here, with the archive's. */
  index?: ManifestIndex;
}

export interface ManifestIndex {
  /** Resolved like the archive's URLs. */
  url: string;
  sha256: string;
  size?: number;
}

export interface ParsedManifest {
  format: 'lander' | 'cuda-libs';
  /** The URL the manifest was read from (the base of its relative URLs). */
  url: string;
  /** Monotonic release counter (lander format); a lower one than last seen is refused by the poller. */
  sequence?: number;
  /** ISO date after which the manifest is refused (lander format). */
  expires?: string;
  components: Record<string, ManifestComponent>;
}

export interface ParseManifestOptions {
  format: 'lander' | 'cuda-libs';
  /** Where the text came from: the base for relative URLs, and named in errors. */
  url: string;
  /** With format `cuda-libs`: the component the document describes. @default "cuda-libs" */
  component?: string;
  /** Current time in ms, to check `expires`. @default Date.now() */
  now?: number;
}

export interface ManifestIssue {
  path: string;
  message: string;
}

const hex64 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'Expected a SHA-256 as 64 hex digits').transform((s) => s.toLowerCase());
const version = z.string().regex(VERSION_PATTERN, 'Expected a version of letters, digits and . _ + -');
const urlRef = z.string().min(1, 'Expected a non-empty URL');

const landerComponent = z.object({
  version,
  url: z.union([urlRef, z.array(urlRef).min(1, 'Expected at least one URL')]),
  sha256: hex64,
  size: z.number().int().positive().optional(),
  restart: z.boolean().optional(),
  index: z.object({ url: urlRef, sha256: hex64, size: z.number().int().positive().optional() }).optional(),
});

// Unknown keys are ignored, not refused: a newer producer may add fields
// within schema 1; a change an old lander must not misread bumps `schema`.
const landerManifest = z.object({
  schema: z.literal(1, { message: 'Expected schema 1 (the only version this lander reads)' }),
  sequence: z.number().int().min(0).optional(),
  expires: z.iso.datetime({ offset: true, message: 'Expected an ISO 8601 date-time like "2026-01-31T00:00:00Z"' }).optional(),
  components: z.record(z.string().regex(COMPONENT_NAME, 'Expected a component name of letters, digits and . _ -'), landerComponent),
});

const cudaLibsManifest = z.object({
  version,
  torch_compat: z.string().optional(),
  archive: urlRef,
  sha256: hex64,
});

function formatPath(p: readonly PropertyKey[]): string {
  if (p.length === 0) return '(top level)';
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

function fail(url: string, issues: ManifestIssue[], cause?: unknown): never {
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new ManifestError(`Cannot use the manifest ${url}: ${summary}`, { cause, data: { url, issues } });
}

/**
 * Resolves a URL from the document against the manifest's URL. A remote
 * manifest may not point at local files: only a file: manifest may name file: URLs.
 */
function resolveUrl(ref: string, base: string, path: PropertyKey[], issues: ManifestIssue[]): string | undefined {
  let u: URL;
  try {
    u = new URL(ref, base);
  } catch {
    issues.push({ path: formatPath(path), message: `Expected a URL, got ${JSON.stringify(ref)}` });
    return undefined;
  }
  const baseScheme = new URL(base).protocol;
  const allowed = baseScheme === 'file:' ? ['http:', 'https:', 'file:'] : ['http:', 'https:'];
  if (!allowed.includes(u.protocol)) {
    issues.push({ path: formatPath(path), message: `Expected a URL with scheme ${allowed.map((s) => s.slice(0, -1)).join(', ')}, got ${JSON.stringify(u.protocol.slice(0, -1))}` });
    return undefined;
  }
  return u.href;
}

/**
 * Parses manifest text in the given format.
 *
 * @throws ManifestError (`ERR_MANIFEST`) whose `data.issues` name each bad field by path, e.g. `components.server.sha256`.
 * @example parseManifest(text, { format: 'cuda-libs', url: 'https://host/v0.3.1/cuda-libs.json' })
 */
export function parseManifest(text: string, opts: ParseManifestOptions): ParsedManifest {
  const { url } = opts;
  try {
    new URL(url);
  } catch (cause) {
    fail(url, [{ path: '(url)', message: `Expected the manifest's own URL to be absolute, got ${JSON.stringify(url)}` }], cause);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    fail(url, [{ path: '(file)', message: `Invalid JSON: ${(cause as Error).message}` }], cause);
  }
  return opts.format === 'lander' ? parseLander(value, opts) : parseCudaLibs(value, opts);
}

function zodIssues(error: z.ZodError): ManifestIssue[] {
  return error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

function parseLander(value: unknown, opts: ParseManifestOptions): ParsedManifest {
  const r = landerManifest.safeParse(value);
  if (!r.success) fail(opts.url, zodIssues(r.error));
  const m = r.data;
  const issues: ManifestIssue[] = [];
  if (m.expires !== undefined && Date.parse(m.expires) <= (opts.now ?? Date.now())) {
    issues.push({ path: 'expires', message: `The manifest expired at ${m.expires}; the publisher must re-sign or re-issue it` });
  }
  const components: Record<string, ManifestComponent> = {};
  for (const [name, c] of Object.entries(m.components)) {
    const refs = Array.isArray(c.url) ? c.url : [c.url];
    const urls = refs.map((ref, i) => resolveUrl(ref, opts.url, Array.isArray(c.url) ? ['components', name, 'url', i] : ['components', name, 'url'], issues));
    const comp: ManifestComponent = { version: c.version, urls: urls.filter((u): u is string => u !== undefined), sha256: c.sha256 };
    if (c.size !== undefined) comp.size = c.size;
    if (c.restart !== undefined) comp.restart = c.restart;
    if (c.index !== undefined) {
      const iu = resolveUrl(c.index.url, opts.url, ['components', name, 'index', 'url'], issues);
      if (iu !== undefined) comp.index = { url: iu, sha256: c.index.sha256, ...(c.index.size !== undefined ? { size: c.index.size } : {}) };
    }
    components[name] = comp;
  }
  if (issues.length > 0) fail(opts.url, issues);
  const out: ParsedManifest = { format: 'lander', url: opts.url, components };
  if (m.sequence !== undefined) out.sequence = m.sequence;
  if (m.expires !== undefined) out.expires = m.expires;
  return out;
}

function parseCudaLibs(value: unknown, opts: ParseManifestOptions): ParsedManifest {
  const r = cudaLibsManifest.safeParse(value);
  if (!r.success) fail(opts.url, zodIssues(r.error));
  const issues: ManifestIssue[] = [];
  const archive = resolveUrl(r.data.archive, opts.url, ['archive'], issues);
  if (issues.length > 0) fail(opts.url, issues);
  const name = opts.component ?? 'cuda-libs';
  return { format: 'cuda-libs', url: opts.url, components: { [name]: { version: r.data.version, urls: [archive!], sha256: r.data.sha256 } } };
}

export interface DesiredSpecs {
  /** Complete components, ready for the planner, config components first in config order. */
  specs: ComponentSpec[];
  /** Components that cannot be installed as things stand; each is left out of `specs`. */
  problems: { component: string; message: string }[];
}

/**
 * The desired components: the config combined with a manifest.
 *
 * The rule, field by field (`version`, `url`, digest, `size`, `restart`):
 * - A field set in the config wins: it is a pin.
 * - The manifest supplies what the config leaves out.
 * - Components the manifest lists and the config does not are installed too.
 * - A component still missing its version, URL or digest is reported as a
 *   problem and not installed; the others go ahead.
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
export function desiredSpecs(config: Config, manifest?: ParsedManifest): DesiredSpecs {
  const names = [...Object.keys(config.components)];
  for (const n of Object.keys(manifest?.components ?? {})) if (!names.includes(n)) names.push(n);
  const specs: ComponentSpec[] = [];
  const problems: DesiredSpecs['problems'] = [];
  for (const name of names) {
    const r = combine(name, config.components[name] ?? {}, manifest?.components[name], manifest !== undefined);
    if (typeof r === 'string') problems.push({ component: name, message: r });
    else specs.push(r);
  }
  return { specs, problems };
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
  else return `Cannot install ${name} ${version}: no digest; set "sha256" or "sha256Url" in the config${missing}`;

  const size = c.size ?? (same ? m.size : undefined);
  if (size !== undefined) spec.size = size;
  // The index names the archive digest it describes; the installer uses it only when that is the digest it trusts.
  const index = configIndex(c, version, urls[0]!) ?? (same && m.index ? { ...m.index } : undefined);
  if (index) spec.index = index;
  return spec;
}
