/**
 * An `oci://` component to what the one-pass pipeline downloads: the
 * archive's SHA-256 (the layer descriptor's digest), its size, one blob URL
 * per mirror (registries and caches: `/v2/<name>/blobs/sha256:…`, plain
 * http(s) mirrors as they are), and the Authorization header each needs.
 * The blob GET itself (redirects to blob storage, Range resume) is the
 * pipeline's, like any archive download.
 */
import type { ComponentSpec, DownloadConfig } from '../../config/schema.ts';
import { AbortError, DigestMismatchError, DownloadError, hasCode, LanderError } from '../../base/errors.ts';
import { backoffDelay, sleep } from '../../base/backoff.ts';
import { isRetryableStatus } from '../http-get.ts';
import { componentLayers, OCI_MANIFEST, sha256Digest, type Layer } from './artifact.ts';
import { credentialLookup, type CredentialLookup } from './credentials.ts';
import { isOciUrl, manifestReference, parseOciReference, registryUrl, type OciReference } from './reference.ts';
import { RegistryClient, scopeOf } from './registry-client.ts';
import type { Send } from './send.ts';

export interface ResolvedSource {
  sha256: string;
  /** The layer's size: the download's exact length. */
  size: number;
  /** What to download, mirrors in order. */
  urls: string[];
  /** Per URL, the request headers it needs (Authorization). */
  headers: Record<string, Record<string, string>>;
  /** The registry whose manifest gave the digest. */
  manifestFrom: string;
  /**
   * The chunk index layer, when the manifest has one: its digest (bound by
   * the same manifest as the archive's) and its blob URL on each registry,
   * in mirror order; `headers` holds their Authorization too.
   */
  index?: { sha256: string; size: number; urls: string[] };
}

export interface ResolveOciOptions {
  download: DownloadConfig;
  signal?: AbortSignal;
  /** `host[:port]` → token file (config `registries.<host>.tokenFile`). */
  tokenFiles?: Record<string, string>;
  credentials?: CredentialLookup;
  send?: Send;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Resolves `spec` (whose first URL is `oci://`). The manifest comes from
 * the first registry that answers, in mirror order (a cache first, the origin
 * after); a pinned `@sha256:` reference is checked against the bytes served,
 * a pinned `sha256` in the config against the layer.
 *
 * @throws DownloadError `ERR_OCI_MANIFEST`, `ERR_REGISTRY_AUTH`, `ERR_HTTP_STATUS`; DigestMismatchError when a pin disagrees.
 */
export async function resolveOciSource(spec: ComponentSpec, o: ResolveOciOptions): Promise<ResolvedSource> {
  const client = new RegistryClient({
    credentials: o.credentials ?? credentialLookup(o.tokenFiles ? { tokenFiles: o.tokenFiles } : {}),
    ...(o.send ? { send: o.send } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    connectTimeoutMs: o.download.connectTimeout,
    idleTimeoutMs: o.download.idleTimeout,
  });
  const refs = spec.urls.map((u) => (isOciUrl(u) ? parse(spec, u) : undefined));
  const failures: Error[] = [];
  let layers: { archive: Layer; index?: Layer } | undefined;
  let from: OciReference | undefined;
  const lastOci = refs.reduce((last, r, i) => (r ? i : last), -1);
  for (const [i, ref] of refs.entries()) {
    if (!ref) continue;
    try {
      // Retries only at the last registry: a cache that is down must not hold up the origin for a whole backoff.
      layers = await fetchLayers(client, spec, ref, o, i === lastOci ? o.download.retries : 0);
      from = ref;
      break;
    } catch (err) {
      if (o.signal?.aborted || hasCode(err, 'ERR_ABORTED')) throw err;
      // A manifest that is there but wrong (not lander's, pin mismatch) is not a mirror being down: stop here.
      if (err instanceof DigestMismatchError || hasCode(err, 'ERR_OCI_MANIFEST')) throw err;
      failures.push(err as Error);
    }
  }
  if (!layers || !from) {
    if (failures.length === 1) throw failures[0]!;
    throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot resolve ${spec.name} ${spec.version}: no registry answered for its manifest: ${failures.map((f) => f.message).join('; ')}`, { cause: failures.at(-1), data: { component: spec.name, version: spec.version, urls: spec.urls } });
  }
  const layer = layers.archive;
  if (spec.sha256 !== undefined && spec.sha256 !== layer.sha256) {
    throw new DigestMismatchError(`Cannot install ${spec.name} ${spec.version}: the registry's manifest ${spec.urls[refs.indexOf(from)]} lists the archive as sha256:${layer.sha256}, but the config pins ${spec.sha256}`, {
      data: { component: spec.name, version: spec.version, expected: spec.sha256, actual: layer.sha256 },
    });
  }
  const urls: string[] = [];
  const indexUrls: string[] = [];
  const headers: Record<string, Record<string, string>> = {};
  for (const [i, u] of spec.urls.entries()) {
    const ref = refs[i];
    if (!ref) {
      urls.push(u);
      continue;
    }
    const blob = registryUrl(ref, 'blobs', layer.digest);
    urls.push(blob);
    const indexBlob = layers.index ? registryUrl(ref, 'blobs', layers.index.digest) : undefined;
    if (indexBlob) indexUrls.push(indexBlob);
    try {
      const auth = await client.authorization(ref, scopeOf(ref, 'pull'));
      if (auth) headers[blob] = { authorization: auth };
      if (auth && indexBlob) headers[indexBlob] = { authorization: auth };
    } catch (err) {
      if (o.signal?.aborted) throw err;
      // A cache that is down now may be back by the time its turn comes; its download then fails on its own and the next mirror goes on.
    }
  }
  const index = layers.index ? { index: { sha256: layers.index.sha256, size: layers.index.size, urls: indexUrls } } : {};
  return { sha256: layer.sha256, size: layer.size, urls, headers, manifestFrom: from.registry, ...index };
}

/** The download failed because a registry answered 401 or 403 (a token expired before a retry), anywhere in the cause chain. */
export function isAuthRefusal(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e && i < 10; e = (e as { cause?: unknown }).cause, i++) {
    const status = (e as LanderError).data?.status;
    if (status === 401 || status === 403) return true;
  }
  return false;
}

function parse(spec: ComponentSpec, url: string): OciReference {
  try {
    return parseOciReference(url);
  } catch (cause) {
    throw new LanderError('ERR_CONFIG', `Cannot install ${spec.name} ${spec.version}: ${(cause as Error).message}`, { cause, data: { component: spec.name, url } });
  }
}

async function fetchLayers(client: RegistryClient, spec: ComponentSpec, ref: OciReference, o: ResolveOciOptions, retries: number): Promise<ReturnType<typeof componentLayers>> {
  const url = registryUrl(ref, 'manifests', manifestReference(ref));
  const what = `the OCI manifest ${url}`;
  let last: Error | undefined;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      await sleep(backoffDelay({ attempt, initialMs: o.download.backoffInitial, maxMs: o.download.backoffMax }), o.signal).catch((cause: unknown) => {
        throw new AbortError(`Cannot fetch ${what}: aborted`, { cause });
      });
    }
    let res;
    try {
      res = await client.request(ref, scopeOf(ref, 'pull'), { method: 'GET', url, headers: { accept: OCI_MANIFEST }, maxBytes: MAX_MANIFEST_BYTES });
    } catch (err) {
      if (o.signal?.aborted) throw new AbortError(`Cannot fetch ${what}: aborted`, { cause: err });
      if (err instanceof LanderError) throw err; // auth failures, size cap: another attempt would not change them
      last = err as Error;
      continue;
    }
    if (res.status === 200) {
      if (ref.digest !== undefined && sha256Digest(res.body) !== ref.digest) {
        throw new DigestMismatchError(`Cannot install ${spec.name} ${spec.version}: ${what} has digest ${sha256Digest(res.body)}, not the pinned ${ref.digest}`, { data: { component: spec.name, url, expected: ref.digest, actual: sha256Digest(res.body) } });
      }
      try {
        return componentLayers(res.body, res.headers['content-type']);
      } catch (cause) {
        throw new DownloadError('ERR_OCI_MANIFEST', `Cannot install ${spec.name} ${spec.version} from ${what}: ${(cause as Error).message}`, { cause, data: { component: spec.name, url } });
      }
    }
    last = new DownloadError('ERR_HTTP_STATUS', `Cannot fetch ${what}: the registry answered HTTP ${res.status}${res.status === 404 ? ' (no such tag or repository: was it pushed?)' : ''}`, { data: { url, status: res.status } });
    if (!isRetryableStatus(res.status)) break;
  }
  throw last ?? new Error(`Cannot fetch ${what}`);
}
