/**
 * `lander push`: publishes each component of `lander pack` output as the OCI
 * artifact `PREFIX/<component>:<version>` (src/fetch/oci/artifact.ts): the
 * archive, and a chunked archive's index as a second layer. Blobs the
 * registry already has are skipped (HEAD), then the manifest is
 * put, unless the tag already points at the same bytes: pushing twice
 * changes nothing.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { PackError } from '../base/errors.ts';
import { indexDigest } from '../install/chunked/index-format.ts';
import { parseManifest } from '../config/manifest.ts';
import { componentManifest, EMPTY_CONFIG, EMPTY_CONFIG_BYTES, OCI_MANIFEST, sha256Digest } from '../fetch/oci/artifact.ts';
import { formatOciReference, parseOciReference, registryUrl, type OciReference } from '../fetch/oci/reference.ts';
import { RegistryClient, scopeOf } from '../fetch/oci/registry-client.ts';
import type { Send } from '../fetch/oci/send.ts';
import type { CredentialLookup } from '../fetch/oci/credentials.ts';

export interface PushOptions {
  /** A `lander pack --out` folder: `manifest.json` and the archives it names. */
  dir: string;
  /** `oci://HOST[:PORT]/PREFIX` or `oci+http://…`. */
  target: string;
  credentials?: CredentialLookup;
  send?: Send;
  signal?: AbortSignal;
  /** Called after each component, for progress lines. */
  onComponent?(r: PushedComponent): void;
}

export interface PushedComponent {
  component: string;
  version: string;
  /** `oci://host/prefix/component:version`. */
  reference: string;
  /** The manifest's digest: `reference@digest` pins it. */
  manifestDigest: string;
  blobsPushed: number;
  blobsPresent: number;
  bytesPushed: number;
  /** False when the tag already pointed at this manifest. */
  manifestPushed: boolean;
}

/** Where PREFIX puts a component: `PREFIX/<component>:<version>`. */
export function componentReference(target: string, component: string, version: string): OciReference {
  const m = /^(oci|oci\+http):\/\/([^/]+)(\/[^:@]*)?$/.exec(target.replace(/\/+$/, ''));
  if (!m) throw new PackError('ERR_PACK_USAGE', `Cannot push: expected oci://HOST[:PORT]/PREFIX (or oci+http://), got ${JSON.stringify(target)}`);
  const prefix = (m[3] ?? '').replace(/^\//, '');
  const url = `${m[1]}://${m[2]}/${prefix ? `${prefix}/` : ''}${component}:${version}`;
  try {
    return parseOciReference(url);
  } catch (cause) {
    throw new PackError('ERR_PACK_USAGE', `Cannot push ${component} ${version}: ${(cause as Error).message}`, { cause });
  }
}

export async function pushRelease(o: PushOptions): Promise<PushedComponent[]> {
  const manifestPath = path.join(o.dir, 'manifest.json');
  const text = await readFile(manifestPath, 'utf8').catch((cause: unknown) => {
    throw new PackError('ERR_PACK_USAGE', `Cannot push ${o.dir}: no manifest.json there (${(cause as Error).message}); push the --out folder of lander pack`, { cause });
  });
  const m = parseManifest(text, { format: 'lander', url: pathToFileURL(manifestPath).href });
  const client = new RegistryClient({ ...(o.credentials ? { credentials: o.credentials } : {}), ...(o.send ? { send: o.send } : {}), ...(o.signal ? { signal: o.signal } : {}) });
  const out: PushedComponent[] = [];
  for (const [name, c] of Object.entries(m.components)) {
    const file = fileURLToPath(c.urls[0]!);
    if (path.dirname(file) !== path.resolve(o.dir)) throw new PackError('ERR_PACK_USAGE', `Cannot push ${name}: its archive ${c.urls[0]} is not in ${o.dir}`);
    const size = (await stat(file)).size;
    if (c.size !== undefined && c.size !== size) throw new PackError('ERR_PACK_USAGE', `Cannot push ${name}: ${file} is ${size} bytes, manifest.json says ${c.size}`);
    const index = c.index ? await indexFile(o.dir, name, c.index) : undefined;
    const ref = componentReference(o.target, name, c.version);
    const r = await pushComponent(client, ref, { name, version: c.version, asset: path.basename(file), sha256: c.sha256, size, file, ...(index ? { index } : {}) });
    o.onComponent?.(r);
    out.push(r);
  }
  return out;
}

interface IndexFile { asset: string; sha256: string; size: number; file: string }

/** The chunk index manifest.json lists for a component, checked to be in the folder and of the size it says. */
async function indexFile(dir: string, name: string, i: { url: string; sha256: string; size?: number }): Promise<IndexFile> {
  const file = i.url.startsWith('file:') ? fileURLToPath(i.url) : '';
  if (path.dirname(file) !== path.resolve(dir)) throw new PackError('ERR_PACK_USAGE', `Cannot push ${name}: its chunk index ${i.url} is not in ${dir}`);
  const size = (await stat(file)).size;
  if (i.size !== undefined && i.size !== size) throw new PackError('ERR_PACK_USAGE', `Cannot push ${name}: ${file} is ${size} bytes, manifest.json says ${i.size}`);
  // manifest.json binds the index by its head's digest (README "Chunked archives"); a registry addresses the blob by the whole file's.
  const bytes = await readFile(file);
  if (indexDigest(bytes) !== i.sha256) throw new PackError('ERR_PACK_USAGE', `Cannot push ${name}: the chunk index ${file} does not match the digest manifest.json gives it`);
  return { asset: path.basename(file), sha256: createHash('sha256').update(bytes).digest('hex'), size, file };
}

async function pushComponent(client: RegistryClient, ref: OciReference, c: { name: string; version: string; asset: string; sha256: string; size: number; file: string; index?: IndexFile }): Promise<PushedComponent> {
  const scope = scopeOf(ref, 'pull,push');
  const r: PushedComponent = { component: c.name, version: c.version, reference: formatOciReference(ref), manifestDigest: '', blobsPushed: 0, blobsPresent: 0, bytesPushed: 0, manifestPushed: false };
  const blobs = [
    { digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size, body: () => EMPTY_CONFIG_BYTES },
    { digest: `sha256:${c.sha256}`, size: c.size, body: () => () => createReadStream(c.file) },
    ...(c.index ? [{ digest: `sha256:${c.index.sha256}`, size: c.index.size, body: () => () => createReadStream(c.index!.file) }] : []),
  ];
  for (const b of blobs) {
    const head = await client.request(ref, scope, { method: 'HEAD', url: registryUrl(ref, 'blobs', b.digest) });
    if (head.status === 200) {
      r.blobsPresent++;
      continue;
    }
    if (head.status !== 404) throw fail(ref, `HEAD of blob ${b.digest} answered HTTP ${head.status}`);
    const start = await client.request(ref, scope, { method: 'POST', url: `${ref.scheme}://${ref.registry}/v2/${ref.repository}/blobs/uploads/` });
    const location = start.headers.location;
    if (start.status !== 202 || !location) throw fail(ref, `starting an upload answered HTTP ${start.status}${errorText(start.body)}`);
    const put = new URL(location, `${ref.scheme}://${ref.registry}/`);
    put.searchParams.set('digest', b.digest);
    const done = await client.request(ref, scope, { method: 'PUT', url: put.href, headers: { 'content-type': 'application/octet-stream' }, body: b.body(), bodyLength: b.size, idleTimeoutMs: 300_000 });
    if (done.status !== 201) throw fail(ref, `uploading blob ${b.digest} answered HTTP ${done.status}${errorText(done.body)}`);
    r.blobsPushed++;
    r.bytesPushed += b.size;
  }
  const manifest = componentManifest({ ...c, ...(c.index ? { index: { asset: c.index.asset, sha256: c.index.sha256, size: c.index.size } } : {}) });
  r.manifestDigest = sha256Digest(manifest);
  const tagUrl = registryUrl(ref, 'manifests', ref.tag!);
  const head = await client.request(ref, scope, { method: 'HEAD', url: tagUrl, headers: { accept: OCI_MANIFEST } });
  if (head.status === 200 && head.headers['docker-content-digest'] === r.manifestDigest) return r;
  const put = await client.request(ref, scope, { method: 'PUT', url: tagUrl, headers: { 'content-type': OCI_MANIFEST }, body: manifest });
  if (put.status !== 201) throw fail(ref, `putting the manifest answered HTTP ${put.status}${errorText(put.body)}`);
  r.manifestPushed = true;
  return r;
}

function fail(ref: OciReference, why: string): PackError {
  return new PackError('ERR_PUSH', `Cannot push ${formatOciReference(ref)}: ${why}`, { data: { reference: formatOciReference(ref) } });
}

/** The registry's own error words (`{"errors":[{"code","message"}]}`), briefly. */
function errorText(body: Buffer): string {
  try {
    const errs = (JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] }).errors;
    return errs?.length ? ` (${errs.map((e) => `${e.code}: ${e.message}`).join('; ').slice(0, 300)})` : '';
  } catch {
    return ''; // not the registry's JSON error body; the status says enough
  }
}
