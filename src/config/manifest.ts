/**
 * Release manifests (pure): lander's own JSON format and voicebox's
 * `cuda-libs.json`, parsed and validated into one shape. No I/O:
 * manifest-poller.ts fetches, this file judges, and src/plan/desired.ts
 * combines a manifest with the config into the specs the installer works from.
 */
import { z } from 'zod';
import { COMPONENT_NAME, VERSION_PATTERN } from './schema.ts';
import { ManifestError } from '../base/errors.ts';
import { isOciUrl } from '../fetch/oci/reference.ts';
import type { Rollout } from '../plan/rollout.ts';
import { isDriverConstraint, type Requires } from '../plan/targeting.ts';

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
  /** Staged rollout: only machines whose bucket is below `percent` take this version (src/plan/rollout.ts). */
  rollout?: Rollout;
  /** The chunk index of a chunked archive (README "Chunked archives"); its digest is bound here, with the archive's. */
  index?: ManifestIndex;
}

export interface ManifestIndex {
  /** Resolved like the archive's URLs. */
  url: string;
  sha256: string;
  size?: number;
}

/** One build of a component for some machines (cu128 or cu126 libs, say); the first that fits is chosen. */
export interface ManifestVariant extends ManifestComponent {
  /** A name for messages and status (`cu128`). */
  name: string;
  /** What the machine must have; none: every machine fits. */
  requires?: Requires;
}

/** A component that the manifest lists as variants instead of one archive. */
export interface ManifestChoice {
  variants: ManifestVariant[];
  /** Applies to the chosen variant unless it has its own. */
  rollout?: Rollout;
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
  /**
   * Components listed as variants (lander format), chosen per machine by
   * src/plan/for-machine.ts; a name is in `components` or here, never both.
   */
  choices?: Record<string, ManifestChoice>;
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

const rolloutSchema = z.object({ percent: z.number().min(0, 'Expected a percent from 0 to 100').max(100, 'Expected a percent from 0 to 100') });
// Strict: a requirement this lander does not know must not be read as "no requirement".
const requiresSchema = z.object({
  nvidiaDriver: z.string().refine(isDriverConstraint, 'Expected a driver constraint like ">=570.26" or ">=560 <570"').optional(),
  os: z.string().min(1).optional(),
  arch: z.string().min(1).optional(),
}).strict();
const archiveFields = {
  url: z.union([urlRef, z.array(urlRef).min(1, 'Expected at least one URL')]),
  sha256: hex64,
  size: z.number().int().positive().optional(),
  restart: z.boolean().optional(),
  rollout: rolloutSchema.optional(),
  index: z.object({ url: urlRef, sha256: hex64, size: z.number().int().positive().optional() }).optional(),
};
const variantSchema = z.object({ name: z.string().regex(COMPONENT_NAME, 'Expected a variant name of letters, digits and . _ -'), requires: requiresSchema.optional(), version, ...archiveFields });

const landerComponent = z.object({
  version: version.optional(),
  url: archiveFields.url.optional(),
  sha256: hex64.optional(),
  size: archiveFields.size,
  restart: archiveFields.restart,
  rollout: archiveFields.rollout,
  index: archiveFields.index,
  variants: z.array(variantSchema).min(1, 'Expected at least one variant').optional(),
}).superRefine((c, ctx) => {
  const fields = ['version', 'url', 'sha256'] as const;
  if (c.variants !== undefined) {
    for (const k of fields) if (c[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `Expected "${k}" inside each variant, not beside "variants"` });
    return;
  }
  for (const k of fields) if (c[k] === undefined) ctx.addIssue({ code: 'custom', path: [k], message: `Expected "${k}" (or "variants")` });
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
  const remote = ['http:', 'https:', 'oci:', 'oci+http:'];
  const allowed = baseScheme === 'file:' ? [...remote, 'file:'] : remote;
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
  const choices: Record<string, ManifestChoice> = {};
  type Archive = { version: string; url: string | string[]; sha256: string; size?: number; restart?: boolean; rollout?: Rollout; index?: { url: string; sha256: string; size?: number } };
  const archive = (c: Archive, at: PropertyKey[]): ManifestComponent => {
    const refs = Array.isArray(c.url) ? c.url : [c.url];
    const urls = refs.map((ref, i) => resolveUrl(ref, opts.url, Array.isArray(c.url) ? [...at, 'url', i] : [...at, 'url'], issues));
    const comp: ManifestComponent = { version: c.version, urls: urls.filter((u): u is string => u !== undefined), sha256: c.sha256 };
    if (c.size !== undefined) comp.size = c.size;
    if (c.restart !== undefined) comp.restart = c.restart;
    if (c.rollout !== undefined) comp.rollout = { percent: c.rollout.percent };
    if (c.index !== undefined) {
      const iu = resolveUrl(c.index.url, opts.url, [...at, 'index', 'url'], issues);
      if (iu !== undefined) comp.index = { url: iu, sha256: c.index.sha256, ...(c.index.size !== undefined ? { size: c.index.size } : {}) };
    }
    return comp;
  };
  for (const [name, c] of Object.entries(m.components)) {
    if (c.variants === undefined) {
      components[name] = archive(c as Archive, ['components', name]);
      continue;
    }
    const variants = c.variants.map((v, i): ManifestVariant => ({ ...archive(v, ['components', name, 'variants', i]), name: v.name, ...(v.requires ? { requires: { ...v.requires } } : {}) }));
    choices[name] = { variants, ...(c.rollout ? { rollout: { percent: c.rollout.percent } } : {}) };
  }
  if (issues.length > 0) fail(opts.url, issues);
  const out: ParsedManifest = { format: 'lander', url: opts.url, components };
  if (Object.keys(choices).length > 0) out.choices = choices;
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
