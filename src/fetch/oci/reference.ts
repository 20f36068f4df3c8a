/**
 * OCI references as lander's URLs (pure): `oci://HOST[:PORT]/NAME:TAG`,
 * `oci://HOST/NAME@sha256:HEX`, and `oci+http://` for a registry on plain
 * HTTP (loopback, a lab network). Names and tags follow the OCI
 * distribution spec's grammar, so a bad one fails at config time.
 */

export interface OciReference {
  /** `https` for `oci://`, `http` for `oci+http://`. */
  scheme: 'http' | 'https';
  /** `host[:port]`, as the registry API and docker's config.json key it. */
  registry: string;
  /** Repository name, e.g. `lander/cuda-libs`. */
  repository: string;
  tag?: string;
  /** `sha256:<hex>`: the manifest is pinned, and what it lists is trusted through it. */
  digest?: string;
}

const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** True for the URL schemes this module reads. */
export function isOciUrl(url: string): boolean {
  return url.startsWith('oci://') || url.startsWith('oci+http://');
}

/**
 * Parses an `oci://` URL; throws an Error saying what is wrong (callers wrap it).
 *
 * @example parseOciReference('oci+http://127.0.0.1:5000/lander/server:1.2.0')
 * // → { scheme: 'http', registry: '127.0.0.1:5000', repository: 'lander/server', tag: '1.2.0' }
 */
export function parseOciReference(url: string): OciReference {
  const m = /^(oci|oci\+http):\/\/([^/?#]+)\/([^?#]+)$/.exec(url);
  if (!m) throw new Error(`expected oci://HOST[:PORT]/NAME:TAG or oci://HOST/NAME@sha256:HEX, got ${JSON.stringify(url)}`);
  const [, scheme, registry, rest] = m as unknown as [string, string, string, string];
  if (registry.includes('@')) throw new Error(`expected no user name in ${JSON.stringify(url)}: credentials come from ~/.docker/config.json or a token file`);
  let repository = rest;
  let tag: string | undefined;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    repository = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new Error(`expected a digest sha256:<64 lower-case hex digits> in ${JSON.stringify(url)}, got ${JSON.stringify(digest)}`);
  }
  const colon = repository.lastIndexOf(':');
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!TAG.test(tag)) throw new Error(`expected a tag of letters, digits and . _ - (at most 128, not starting with . or -) in ${JSON.stringify(url)}, got ${JSON.stringify(tag)}`);
  }
  if (!NAME.test(repository)) throw new Error(`expected a repository name of lower-case letters, digits and . _ - / in ${JSON.stringify(url)}, got ${JSON.stringify(repository)}`);
  if (tag === undefined && digest === undefined) throw new Error(`expected a :TAG or @sha256:… in ${JSON.stringify(url)}`);
  return { scheme: scheme === 'oci' ? 'https' : 'http', registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** `http(s)://registry/v2/<name>/<kind>/<ref>`. */
export function registryUrl(ref: Pick<OciReference, 'scheme' | 'registry' | 'repository'>, kind: 'manifests' | 'blobs', reference: string): string {
  return `${ref.scheme}://${ref.registry}/v2/${ref.repository}/${kind}/${reference}`;
}

/** The reference a manifest is fetched by: the digest when pinned, else the tag. */
export function manifestReference(ref: OciReference): string {
  return ref.digest ?? ref.tag!;
}

/** Back to lander's URL form. */
export function formatOciReference(ref: OciReference): string {
  return `${ref.scheme === 'https' ? 'oci' : 'oci+http'}://${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}
