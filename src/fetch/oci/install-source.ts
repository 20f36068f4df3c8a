/**
 * The hook between an install and the OCI source, kept in one place so the
 * install step stays as it is for http(s) and file: components:
 * `ociInstallSource` resolves an `oci://` spec (undefined for any other),
 * `ociRequestFields` is what the install worker's request takes from it,
 * `ociChunkedSpec` the spec a chunked install runs with when the manifest
 * carries an index layer, and `withTokenRenewal` runs an install again once,
 * with a new token, when the registry refused the old one on a retry (it
 * resumes from its `.part`).
 */
import type { ComponentSpec, Config } from '../../config/schema.ts';
import type { InstallRequest } from '../../../workers/protocol.ts';
import { isOciUrl } from './reference.ts';
import { isAuthRefusal, resolveOciSource, type ResolvedSource } from './resolve.ts';

/** Resolves `spec` when its first URL is `oci://`; undefined otherwise. */
export async function ociInstallSource(spec: ComponentSpec, config: Pick<Config, 'download' | 'registries'>, signal?: AbortSignal): Promise<ResolvedSource | undefined> {
  if (!isOciUrl(spec.urls[0]!)) return undefined;
  const tokenFiles = config.registries ? Object.fromEntries(Object.entries(config.registries).map(([h, r]) => [h, r.tokenFile])) : undefined;
  return resolveOciSource(spec, { download: config.download, ...(signal ? { signal } : {}), ...(tokenFiles ? { tokenFiles } : {}) });
}

/** The install request's `urls`, `headers` and `maxBytes`: the blob URLs and their auth for OCI, the spec's own otherwise. */
export function ociRequestFields(spec: ComponentSpec, oci: ResolvedSource | undefined): Pick<InstallRequest, 'urls' | 'headers' | 'maxBytes'> {
  if (!oci) return { urls: spec.urls, ...(spec.size !== undefined ? { maxBytes: spec.size } : {}) };
  return {
    urls: oci.urls,
    ...(Object.keys(oci.headers).length > 0 ? { headers: oci.headers } : {}),
    maxBytes: Math.min(spec.size ?? Infinity, oci.size),
  };
}

/**
 * The spec a chunked install of an `oci://` component runs with: the blob
 * URLs as its mirrors and the index layer as its index, the layer
 * descriptor's digest as the index's trusted digest (the same manifest
 * vouches for both). Undefined when the manifest has no index layer.
 */
export function ociChunkedSpec(spec: ComponentSpec, oci: ResolvedSource | undefined): (ComponentSpec & { index: NonNullable<ComponentSpec['index']> }) | undefined {
  if (!oci?.index) return undefined;
  return { ...spec, urls: oci.urls, size: oci.size, sha256: oci.sha256, index: { url: oci.index.urls[0]!, sha256: oci.index.sha256, size: oci.index.size } };
}

/**
 * Runs `install(source)`; when it fails because the registry refused the
 * token (a 401/403 on a retry), resolves again and runs it once more with
 * the new token, unless the tag now names another archive.
 */
export async function withTokenRenewal<T>(
  spec: ComponentSpec,
  config: Pick<Config, 'download' | 'registries'>,
  source: ResolvedSource | undefined,
  signal: AbortSignal | undefined,
  install: (source: ResolvedSource | undefined) => Promise<T>,
  onRenew?: (reason: string) => void,
): Promise<T> {
  try {
    return await install(source);
  } catch (err) {
    if (!source || !isAuthRefusal(err)) throw err;
    onRenew?.((err as Error).message);
    const again = await ociInstallSource(spec, config, signal);
    if (!again || again.sha256 !== source.sha256) throw err; // the tag moved meanwhile: the next reconcile installs what it names now
    return install(again);
  }
}
