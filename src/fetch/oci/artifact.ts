/**
 * lander's OCI artifact (pure), in the form ORAS writes: an image manifest
 * with lander's `artifactType`, the empty config, and the archive as its one
 * gzip layer titled with the archive's file name. The layer descriptor's
 * digest is the archive's SHA-256, so no sidecar is needed. A chunked
 * archive's index rides as a second layer of its own media type, its digest
 * bound by the same manifest. A registry, a pull-through cache or a P2P
 * layer carries both like any image layer.
 */
import { createHash } from 'node:crypto';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** What a lander component is, as an artifact. */
export const LANDER_ARTIFACT_TYPE = 'application/vnd.lander.component.v1';
/** The archive layer: a plain `.tar.gz`, so the standard gzip layer type. */
export const ARCHIVE_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** The chunk index of a chunked archive (README "Chunked archives"): lander's own binary format. */
export const INDEX_MEDIA_TYPE = 'application/vnd.lander.chunk-index.v2';
export const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2, data: 'e30=' } as const;
export const EMPTY_CONFIG_BYTES = Buffer.from('{}');
export const TITLE = 'org.opencontainers.image.title';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The manifest `lander push` writes for one component; canonical bytes, so pushing twice gives the same digest. */
export function componentManifest(c: { name: string; version: string; asset: string; sha256: string; size: number; index?: { asset: string; sha256: string; size: number } }): Buffer {
  const layers: Descriptor[] = [{ mediaType: ARCHIVE_MEDIA_TYPE, digest: `sha256:${c.sha256}`, size: c.size, annotations: { [TITLE]: c.asset } }];
  if (c.index) layers.push({ mediaType: INDEX_MEDIA_TYPE, digest: `sha256:${c.index.sha256}`, size: c.index.size, annotations: { [TITLE]: c.index.asset } });
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: LANDER_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers,
    annotations: { 'org.opencontainers.image.version': c.version, 'dev.lander.component': c.name },
  };
  return Buffer.from(JSON.stringify(doc));
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export type Layer = Descriptor & { sha256: string };

/**
 * The layers of a lander manifest, checked: an OCI image manifest of
 * lander's artifact type (or its config type, as older ORAS wrote it) with
 * exactly one gzip layer (the archive) and at most one chunk-index layer.
 * Layers of other types are ignored. Throws an Error saying what is wrong.
 */
export function componentLayers(body: Buffer, contentType?: string): { archive: Layer; index?: Layer } {
  let doc: { mediaType?: unknown; artifactType?: unknown; config?: { mediaType?: unknown }; layers?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new Error(`the manifest is not JSON (${(cause as Error).message})`, { cause });
  }
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : contentType?.split(';')[0]?.trim();
  if (mediaType !== OCI_MANIFEST) throw new Error(`expected an OCI image manifest (${OCI_MANIFEST}), got ${JSON.stringify(mediaType ?? null)}`);
  const type = doc.artifactType ?? doc.config?.mediaType;
  if (type !== LANDER_ARTIFACT_TYPE) throw new Error(`expected a lander component (artifactType ${LANDER_ARTIFACT_TYPE}), got ${JSON.stringify(type ?? null)}: is this a container image?`);
  const layers = Array.isArray(doc.layers) ? (doc.layers as Descriptor[]) : [];
  const archives = layers.filter((l) => l && l.mediaType === ARCHIVE_MEDIA_TYPE);
  if (archives.length !== 1) throw new Error(`expected exactly one ${ARCHIVE_MEDIA_TYPE} layer, got ${archives.length}`);
  const indexes = layers.filter((l) => l && l.mediaType === INDEX_MEDIA_TYPE);
  if (indexes.length > 1) throw new Error(`expected at most one ${INDEX_MEDIA_TYPE} layer, got ${indexes.length}`);
  const archive = checkedLayer(archives[0]!, 'layer');
  return indexes.length === 1 ? { archive, index: checkedLayer(indexes[0]!, 'index layer') } : { archive };
}

/** The archive layer of a manifest, checked as `componentLayers` does. */
export function archiveLayer(body: Buffer, contentType?: string): Layer {
  return componentLayers(body, contentType).archive;
}

function checkedLayer(l: Descriptor, what: string): Layer {
  const m = /^sha256:([0-9a-f]{64})$/.exec(String(l.digest));
  if (!m) throw new Error(`expected the ${what} digest as sha256:<64 hex digits>, got ${JSON.stringify(l.digest)}`);
  if (!Number.isSafeInteger(l.size) || l.size <= 0) throw new Error(`expected the ${what} size as a positive whole number, got ${JSON.stringify(l.size)}`);
  return { mediaType: l.mediaType, digest: l.digest, size: l.size, sha256: m[1]!, ...(l.annotations ? { annotations: l.annotations } : {}) };
}
