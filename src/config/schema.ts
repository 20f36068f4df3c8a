/**
 * The config file: its zod schema and a pure parser that turns text into a
 * validated, fully-defaulted `Config`, or a ConfigError whose `issues` name
 * each bad field by its path.
 */
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../base/errors.ts';
import { parseDuration, parseSize } from '../base/units.ts';
import { parsePublicKey } from './minisign.ts';
import { isOciUrl } from '../fetch/oci/reference.ts';
import { archiveUrlTemplate, urlTemplate } from './url-template.ts';
import { unknownKeys, valueAt, wrongType } from './config-issues.ts';

/** The longest timer Node and Deno keep: a longer setTimeout fires after 1 ms instead (TimeoutOverflowWarning). */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** @param minMs a floor for intervals, where 0 would be a busy loop */
const duration = (what: string, minMs = 0) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `Expected ${what} as a non-negative duration like "30s", "500ms" or "2m", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    if (ms > TIMER_MAX_MS || ms < minMs) {
      const range = `at least ${minMs >= 1000 ? `${minMs / 1000}s` : `${minMs}ms`} and at most 24 days`;
      ctx.addIssue({ code: 'custom', message: `Expected ${what} to be ${range}, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

const size = (what: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = parseSize(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `Expected ${what} as a non-negative size like "2GiB" or a number of bytes, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });

const positiveInt = z.number().int().positive();
const hex64 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'Expected a SHA-256 as 64 hex digits').transform((s) => s.toLowerCase());
/** A component name; also a folder name in the store. Shared with src/manifest.ts. */
export const COMPONENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A version; also part of a store folder name, so no `/` or leading dot. Shared with src/manifest.ts. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const componentName = COMPONENT_NAME;

const componentSchema = z
  .object({
    /** Desired version; expands `{version}` in `url`. Optional when a manifest supplies it. */
    version: z.string().regex(VERSION_PATTERN, 'Expected a version of letters, digits and . _ + -').optional(),
    /** Archive URL, or several mirrors tried in order. Optional when a manifest supplies it. */
    url: z.union([archiveUrlTemplate, z.array(archiveUrlTemplate).min(1)]).optional(),
    /** Pinned SHA-256 of the archive. */
    sha256: hex64.optional(),
    /** URL of a `<hex>  <name>` sidecar; `{url}` and `{version}` expand. */
    sha256Url: urlTemplate.optional(),
    /** Largest archive accepted, in bytes; a longer body is cut and rejected. */
    size: size('size').optional(),
    /** Restart the server when this component changes. @default true */
    restart: z.boolean().optional(),
    /**
     * The chunk index of a chunked archive (`lander pack` writes `<archive>.index`),
     * for delta and parallel installs; its digest pinned (`sha256`) or from a
     * sidecar (`sha256Url`). `{url}` (the archive's URL) and `{version}` expand.
     */
    index: z.object({ url: urlTemplate, sha256: hex64.optional(), sha256Url: urlTemplate.optional() }).strict()
      .refine((i) => (i.sha256 === undefined) !== (i.sha256Url === undefined), { message: 'Expected exactly one of "sha256" and "sha256Url"' }).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.sha256 !== undefined && c.sha256Url !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'Expected only one of "sha256" and "sha256Url", got both', path: [] });
    }
  });

const manifestSchema = z
  .object({
    /** Where the release manifest is polled (http, https or file). */
    url: urlTemplate,
    /** `lander`: lander's own JSON; `cuda-libs`: voicebox's cuda-libs.json for one component. @default "lander" */
    format: z.enum(['lander', 'cuda-libs']).default('lander'),
    /** With format `cuda-libs`: the component it describes. @default "cuda-libs" */
    component: z.string().regex(componentName).default('cuda-libs'),
    /** Time between polls. @default "1h" */
    interval: duration('manifest.interval', 100).default(3_600_000),
    /** Random spread added to each interval, as a fraction of it. @default 0.1 */
    jitter: z.number().min(0).max(1).default(0.1),
    /**
     * minisign public key: the base64 key line (`RWQ…`) or an absolute path to
     * a `.pub` file. With it, every manifest must come with a valid
     * `<url>.minisig` and a `sequence`; see README "Signed manifests".
     */
    publicKey: z.string().min(1).superRefine((v, ctx) => {
      if (path.isAbsolute(v)) return;
      try {
        parsePublicKey(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `Expected a minisign public key line or an absolute path to a .pub file: ${(err as Error).message}` });
      }
    }).optional(),
  })
  .strict();

const apiSchema = z
  .object({
    /** Unix socket path (mode 0600). @default "<root>/lander.sock" */
    socket: z.string().refine((p) => path.isAbsolute(p), { message: 'Expected an absolute path' }).optional(),
    /** Also listen on loopback TCP; requires a bearer token read from `tokenFile`. */
    tcp: z
      .object({
        host: z.enum(['127.0.0.1', '::1', 'localhost']).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535),
        tokenFile: z.string().refine((p) => path.isAbsolute(p), { message: 'Expected an absolute path' }),
      })
      .strict()
      .optional(),
  })
  .strict();

const healthSchema = z
  .object({
    /** HTTP probe URL (loopback). */
    url: urlTemplate.optional(),
    /** Regex matched against the server's stdout lines instead of an HTTP probe. */
    logLine: z.string().min(1).refine(isRegExp, { message: 'Expected a valid regular expression' }).optional(),
    /** Status expected from the probe. @default 200 */
    status: z.number().int().min(100).max(599).default(200),
    /** Keys the probe's JSON body must have with these values, e.g. {"status": "healthy"}. */
    json: z.record(z.string(), z.unknown()).optional(),
    /** Time between readiness probes while the server starts (they begin faster and double up to this). @default "500ms" */
    interval: duration('health.interval', 10).default(500),
    /** Time between liveness probes once the server is healthy: calmer, so a server that logs its requests is not flooded. @default "5s" */
    livenessInterval: duration('health.livenessInterval', 10).default(5_000),
    /** Time the server has to become healthy after start. @default "120s" */
    timeout: duration('health.timeout').default(120_000),
    /** Time one probe may take. @default "5s" */
    probeTimeout: duration('health.probeTimeout').default(5_000),
  })
  .strict();

const serverSchema = z
  .object({
    /** Executable, relative to the generation folder (e.g. "./voicebox-server-cuda"). */
    command: z.string().min(1).superRefine((v, ctx) => {
      if (path.isAbsolute(v)) return; // a system binary such as /usr/bin/python3 is allowed
      const norm = path.posix.normalize(v.replaceAll('\\', '/'));
      if (norm === '..' || norm.startsWith('../')) {
        ctx.addIssue({ code: 'custom', message: `Expected a command inside the generation folder, got ${JSON.stringify(v)}` });
      }
    }),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).default({}),
    health: healthSchema.optional(),
    stop: z
      .object({
        /** @default "SIGTERM" */
        signal: z.enum(['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']).default('SIGTERM'),
        /** Time before SIGKILL. @default "10s" */
        timeout: duration('stop.timeout').default(10_000),
      })
      .strict()
      .default({ signal: 'SIGTERM', timeout: 10_000 }),
    restart: z
      .object({
        /** "immediate" restarts on landing; "idle" waits for the idle probe. @default "immediate" */
        when: z.enum(['immediate', 'idle']).default('immediate'),
        idle: z
          .object({
            url: urlTemplate,
            status: z.number().int().min(100).max(599).default(200),
            json: z.record(z.string(), z.unknown()).optional(),
            interval: duration('restart.idle.interval', 10).default(1_000),
            maxDeferral: duration('restart.idle.maxDeferral').default(600_000),
          })
          .strict()
          .optional(),
        initialDelay: duration('restart.initialDelay').default(1_000),
        factor: z.number().min(1).max(10).default(2),
        maxDelay: duration('restart.maxDelay').default(60_000),
        /** Uptime after which the backoff resets. @default "60s" */
        resetAfter: duration('restart.resetAfter').default(60_000),
        /** Crash loop: this many exits within `window` marks the server failed. @default 5 */
        crashLoopExits: positiveInt.default(5),
        window: duration('restart.window').default(120_000),
      })
      .strict()
      .superRefine((r, ctx) => {
        if (r.when === 'idle' && !r.idle) ctx.addIssue({ code: 'custom', message: 'Expected "idle" settings when "when" is "idle"', path: ['idle'] });
      })
      .default({ when: 'immediate', initialDelay: 1_000, factor: 2, maxDelay: 60_000, resetAfter: 60_000, crashLoopExits: 5, window: 120_000 }),
  })
  .strict();

const downloadDefaults = { concurrency: 2, connectTimeout: 15_000, idleTimeout: 30_000, retries: 5, backoffInitial: 1_000, backoffMax: 30_000, connections: 8, segmentThreshold: 32 << 20 };
const downloadSchema = z
  .object({
    /** Components installed at once. @default 2 */
    concurrency: z.number().int().min(1).max(16).default(downloadDefaults.concurrency),
    connectTimeout: duration('download.connectTimeout').default(downloadDefaults.connectTimeout),
    /** A body that sends nothing for this long is dropped and resumed. @default "30s" */
    idleTimeout: duration('download.idleTimeout').default(downloadDefaults.idleTimeout),
    /** Attempts after the first. @default 5 */
    retries: z.number().int().min(0).max(100).default(downloadDefaults.retries),
    backoffInitial: duration('download.backoffInitial').default(downloadDefaults.backoffInitial),
    backoffMax: duration('download.backoffMax').default(downloadDefaults.backoffMax),
    /** Connections for one archive on a server that honours ranges; 1 keeps one stream. @default 8 */
    connections: z.number().int().min(1).max(16).default(downloadDefaults.connections),
    /** An archive with less than this left to fetch keeps one stream. @default "32MiB" */
    segmentThreshold: size('download.segmentThreshold').default(downloadDefaults.segmentThreshold),
    /** Segment size; by default about four per connection, 1-16 MiB. */
    segmentSize: size('download.segmentSize').optional(),
    /** Write every archive byte to the resumable `.part`, also on a link faster than the install (which otherwise bypasses it). @default false */
    keepPart: z.boolean().optional(),
  })
  .strict()
  .default(downloadDefaults);

const limitsDefaults = {
  maxEntries: 200_000,
  maxExpansionRatio: 50,
  maxMetaEntrySize: 1024 * 1024,
  maxPathLength: 4096,
  maxPathDepth: 1024,
  maxExtractedBytes: 64 * 1024 ** 3,
};
const limitsSchema = z
  .object({
    maxEntries: positiveInt.default(limitsDefaults.maxEntries),
    /** Extracted bytes / archive bytes above which extraction stops (gzip bomb). */
    maxExpansionRatio: z.number().positive().default(limitsDefaults.maxExpansionRatio),
    /** Bytes of pax/long-name headers before one entry; at most 4 MiB, what tar-stream itself buffers per header. */
    maxMetaEntrySize: size('limits.maxMetaEntrySize').refine((n) => n <= 4 * 1024 * 1024, { message: 'Expected limits.maxMetaEntrySize of at most 4 MiB (the tar parser holds no more)' }).default(limitsDefaults.maxMetaEntrySize),
    /** Longest entry name in bytes; the kernel's PATH_MAX (4096) is the ceiling. */
    maxPathLength: positiveInt.max(4096).default(limitsDefaults.maxPathLength),
    /** Most parts in an entry name; 2048 is the most a 4096-byte name can have. */
    maxPathDepth: positiveInt.max(2048).default(limitsDefaults.maxPathDepth),
    maxExtractedBytes: size('limits.maxExtractedBytes').default(limitsDefaults.maxExtractedBytes),
  })
  .strict()
  .default(limitsDefaults);

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    /** Absolute folder that holds the store, generations and `current`. */
    root: z.string().refine((p) => path.isAbsolute(p), { message: 'Expected an absolute path' })
      .refine((p) => path.resolve(p) !== '/', { message: 'Expected a folder for lander, not "/" itself' }),
    /** Every component, or those the manifest does not fully describe; may be empty or absent with a manifest. */
    components: z
      .record(z.string().regex(componentName, 'Expected a component name of letters, digits and . _ -'), componentSchema)
      .default({}),
    server: serverSchema.optional(),
    manifest: manifestSchema.optional(),
    /** Per OCI registry (`host[:port]`, as in the `oci://` URL): `tokenFile`, an absolute path whose text is sent as `Authorization: Bearer`. Without it, ~/.docker/config.json (`docker login`) or anonymous. */
    registries: z.record(
      z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'Expected a registry as host or host:port'),
      z.object({ tokenFile: z.string().refine((p) => path.isAbsolute(p), { message: 'Expected an absolute path' }) }).strict(),
    ).optional(),
    /** This machine's id for staged rollouts (README "Many machines"). @default the contents of /etc/machine-id */
    machineId: z.string().regex(/^\S{1,256}$/, 'Expected a machine id of 1 to 256 characters without spaces').optional(),
    api: apiSchema.default({}),
    download: downloadSchema,
    limits: limitsSchema,
    /** Generations kept for rollback, the current one included. @default 3 */
    keepGenerations: z.number().int().min(1).max(100).default(3),
    /** Free space asked for before a download: the rest of the archive, its extracted size (archive × `expansionEstimate`), and `margin`. */
    disk: z
      .object({
        /** @default "256MiB" */
        margin: size('disk.margin').default(256 * 1024 * 1024),
        /** Extracted bytes per archive byte assumed by the check. @default 2.5 */
        expansionEstimate: z.number().min(1).max(100).default(2.5),
      })
      .strict()
      .default({ margin: 256 * 1024 * 1024, expansionEstimate: 2.5 }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** Also append JSON lines to this absolute path (reopened on SIGHUP, for logrotate); `lander logs` reads it. */
        file: z.string().refine((p) => path.isAbsolute(p), { message: 'Expected an absolute path' }).optional(),
        /** With `file`: keep writing JSON lines to stdout (journald) too. @default true */
        stdout: z.boolean().default(true),
      })
      .strict()
      .default({ level: 'info', stdout: true }),
  })
  .strict()
  .superRefine((c, ctx) => {
    // Without a manifest the config alone must say everything about each component.
    if (c.manifest) return;
    if (Object.keys(c.components).length === 0) {
      ctx.addIssue({ code: 'custom', message: 'Expected at least one component (or a "manifest" that lists them)', path: ['components'] });
    }
    for (const [name, comp] of Object.entries(c.components)) {
      for (const key of ['version', 'url'] as const) {
        if (comp[key] === undefined) ctx.addIssue({ code: 'custom', message: `Expected "${key}" (no manifest is configured to supply it)`, path: ['components', name, key] });
      }
      if (comp.sha256 === undefined && comp.sha256Url === undefined && !firstIsOci(comp)) {
        ctx.addIssue({ code: 'custom', message: 'Expected one of "sha256" or "sha256Url": lander never installs an archive it cannot verify', path: ['components', name] });
      }
    }
  });

export type RawConfig = z.output<typeof configSchema>;
export type ServerConfig = NonNullable<RawConfig['server']>;
export type DownloadConfig = RawConfig['download'];
export type ArchiveLimits = RawConfig['limits'];
export type ManifestConfig = NonNullable<RawConfig['manifest']>;
export type ApiConfig = RawConfig['api'];
/** A component as the config states it: templates unexpanded, fields a manifest may fill. */
export type ComponentConfig = RawConfig['components'][string];

/** A component with everything known and its templates expanded: what the installer works from. */
export interface ComponentSpec {
  name: string;
  version: string;
  /** Mirrors, tried in order. */
  urls: string[];
  /** Neither this nor `sha256Url` when `urls[0]` is an `oci://` reference: the registry's manifest gives the digest. */
  sha256?: string;
  sha256Url?: string;
  size?: number;
  restart: boolean;
  /** A chunk index for the archive (config or manifest): enables the chunked (delta, parallel) install. */
  index?: { url: string; sha256?: string; sha256Url?: string; size?: number };
}

export type Config = RawConfig;

export type { ConfigIssue };

/** `{version}` and `{url}` in a template, replaced. */
export function expandTemplate(t: string, vars: { version: string; url?: string }): string {
  return t.replaceAll('{version}', vars.version).replaceAll('{url}', vars.url ?? '{url}');
}

/** The first URL is an OCI reference: the digest comes from the registry's manifest (its layer descriptor), no sidecar needed. */
export function firstIsOci(c: { url?: string | string[] | undefined }): boolean {
  const first = Array.isArray(c.url) ? c.url[0] : c.url;
  return first !== undefined && isOciUrl(first);
}

/** The config's `index`, templates expanded with the version and the archive URL. */
export function configIndex(c: ComponentConfig, version: string, url: string): ComponentSpec['index'] {
  if (!c.index) return undefined;
  const vars = { version, url };
  return { url: expandTemplate(c.index.url, vars), ...(c.index.sha256 ? { sha256: c.index.sha256 } : { sha256Url: expandTemplate(c.index.sha256Url!, vars) }) };
}

function formatPath(p: readonly PropertyKey[]): string {
  if (p.length === 0) return '(top level)';
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

/** Validates an already-parsed JSON value. */
export function validateConfig(value: unknown, source = 'config'): Config {
  const r = configSchema.safeParse(value);
  if (!r.success) {
    const issues: ConfigIssue[] = r.error.issues.map((i) => ({
      path: formatPath(i.path),
      message: i.code === 'unrecognized_keys' ? unknownKeys(configSchema, i.path, i.keys)
        : i.code === 'invalid_key' ? i.issues.map((k) => k.message).join('; ')
        : i.code === 'invalid_type' ? wrongType(i.expected, valueAt(value, i.path)) : i.message,
    }));
    const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    throw new ConfigError(`Cannot use ${source}: ${summary}`, { data: { source, issues } });
  }
  return r.data;
}

/** Parses config text (JSON). Throws ConfigError naming the source and field paths. */
export function parseConfig(text: string, source = 'config'): Config {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`Cannot use ${source}: it is not valid JSON (${(cause as Error).message})`, {
      cause,
      data: { source, issues: [{ path: '(file)', message: `Invalid JSON: ${(cause as Error).message}` }] },
    });
  }
  return validateConfig(value, source);
}

function isRegExp(p: string): boolean {
  try {
    new RegExp(p);
    return true;
  } catch {
    return false; // reported as the field's issue
  }
}
