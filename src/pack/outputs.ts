/**
 * The release files `lander pack` writes beside its archives (pure text
 * builders): voicebox's `.sha256` sidecars and `cuda-libs.json`, and lander's
 * manifest (schema 1, read by src/manifest.ts).
 */

export interface PackedComponent {
  name: string;
  version: string;
  /** Archive file name. */
  asset: string;
  sha256: string;
  size: number;
  /** The chunk index beside a chunked archive (file name, digest, size). */
  index?: { asset: string; sha256: string; size: number };
}

/** `<hex>  <name>\n`, as sha256sum and package_cuda.py write it. */
export function sidecarText(c: PackedComponent): string {
  return `${c.sha256}  ${c.asset}\n`;
}

/** The index's own sidecar, `<hex>  <name>.index\n`. */
export function indexSidecarText(c: PackedComponent): string | undefined {
  return c.index ? `${c.index.sha256}  ${c.index.asset}\n` : undefined;
}

/** voicebox's `cuda-libs.json` for the component that holds the CUDA libraries. */
export function cudaLibsJson(c: PackedComponent, torchCompat?: string): string {
  const doc = { version: c.version, ...(torchCompat !== undefined ? { torch_compat: torchCompat } : {}), archive: c.asset, sha256: c.sha256 };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export interface ManifestOptions {
  /** Absolute base for the archive URLs; without it they are relative to the manifest. */
  baseUrl?: string;
  /** Release counter; required by lander for a signed manifest. */
  sequence?: number;
}

/**
 * lander's manifest. Relative URLs resolve against the manifest's own URL,
 * so the folder can be uploaded anywhere as is.
 *
 * @example landerManifest([{ name: 'server', version: '0.3.1', asset: 'voicebox-server-cuda.tar.gz', sha256, size }], { sequence: 7 })
 */
export function landerManifest(components: readonly PackedComponent[], opts: ManifestOptions = {}): string {
  const base = opts.baseUrl === undefined ? undefined : opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`;
  const doc = {
    schema: 1,
    ...(opts.sequence !== undefined ? { sequence: opts.sequence } : {}),
    components: Object.fromEntries(components.map((c) => [c.name, {
      version: c.version,
      url: base === undefined ? encodeURIComponent(c.asset) : new URL(encodeURIComponent(c.asset), base).href,
      sha256: c.sha256,
      size: c.size,
      ...(c.index ? { index: { url: base === undefined ? encodeURIComponent(c.index.asset) : new URL(encodeURIComponent(c.index.asset), base).href, sha256: c.index.sha256, size: c.index.size } } : {}),
    }])),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
