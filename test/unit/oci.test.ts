import { describe, expect, it } from 'vitest';
import { parseChallenges } from '../../src/fetch/oci/challenge.ts';
import { formatOciReference, parseOciReference, registryUrl } from '../../src/fetch/oci/reference.ts';
import { dockerConfigEntry, dockerConfigSource, helperCredential, helperServerName } from '../../src/fetch/oci/credentials.ts';
import { archiveLayer, componentLayers, componentManifest, EMPTY_CONFIG, EMPTY_CONFIG_BYTES, INDEX_MEDIA_TYPE, LANDER_ARTIFACT_TYPE, sha256Digest } from '../../src/fetch/oci/artifact.ts';
import { componentReference } from '../../src/pack/push.ts';
import { validateConfig } from '../../src/config/schema.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('OCI references', () => {
  it('reads host, port, name, tag and digest; oci+http is plain HTTP', () => {
    expect(parseOciReference('oci://ghcr.io/jamiepine/voicebox/cuda-libs:cu128-v1')).toEqual({ scheme: 'https', registry: 'ghcr.io', repository: 'jamiepine/voicebox/cuda-libs', tag: 'cu128-v1' });
    expect(parseOciReference('oci+http://127.0.0.1:5000/lander/server:1.2.0')).toEqual({ scheme: 'http', registry: '127.0.0.1:5000', repository: 'lander/server', tag: '1.2.0' });
    expect(parseOciReference(`oci://reg.example:8443/lander/server@${D}`)).toEqual({ scheme: 'https', registry: 'reg.example:8443', repository: 'lander/server', digest: D });
    expect(parseOciReference(`oci://reg.example/lander/server:1.2.0@${D}`)).toMatchObject({ tag: '1.2.0', digest: D });
    expect(registryUrl(parseOciReference('oci+http://h:1/a/b:t'), 'blobs', D)).toBe(`http://h:1/v2/a/b/blobs/${D}`);
    expect(formatOciReference(parseOciReference('oci+http://h:1/a/b:t'))).toBe('oci+http://h:1/a/b:t');
  });

  it('refuses what the distribution spec refuses, saying what is wrong', () => {
    expect(() => parseOciReference('oci://reg/Lander/server:1')).toThrow(/repository name of lower-case/);
    expect(() => parseOciReference('oci://reg/lander/server:1.2.0+cu128')).toThrow(/expected a tag of letters/);
    expect(() => parseOciReference('oci://reg/lander/server')).toThrow(/:TAG or @sha256/);
    expect(() => parseOciReference('oci://reg/lander/server@sha256:abc')).toThrow(/64 lower-case hex/);
    expect(() => parseOciReference('oci://user:pw@reg/lander/server:1')).toThrow(/no user name/);
    expect(() => parseOciReference('oci://reg')).toThrow(/expected oci:\/\/HOST/);
  });

  it('the config takes oci:// archive URLs with {version} and needs no digest for them; a bad reference names the field', () => {
    const c = validateConfig({ root: '/var/lib/lander', components: { server: { version: '1.0.0', url: ['oci://cache.lab:5000/lander/server:{version}', 'oci://ghcr.io/o/server:{version}'] } } });
    expect(c.components.server!.url).toHaveLength(2);
    expect(() => validateConfig({ root: '/var/lib/lander', components: { server: { version: '1', url: 'oci://reg/Lander:{version}' } } })).toThrow(/components\.server\.url: Expected an OCI reference/);
    expect(() => validateConfig({ root: '/var/lib/lander', components: { server: { version: '1', url: 'https://x/a.tar.gz' } } })).toThrow(/sha256/);
    expect(() => validateConfig({ root: '/var/lib/lander', components: { server: { version: '1', sha256Url: 'oci://reg/a:1', url: 'https://x/a.tar.gz' } } })).toThrow(/sha256Url: Expected a URL with scheme http, https or file/);
  });

  it('push names each component PREFIX/<component>:<version>', () => {
    expect(componentReference('oci+http://127.0.0.1:5000/lander', 'cuda-libs', 'cu128-v1')).toEqual({ scheme: 'http', registry: '127.0.0.1:5000', repository: 'lander/cuda-libs', tag: 'cu128-v1' });
    expect(componentReference('oci://ghcr.io/', 'server', '1.0.0').repository).toBe('server');
    expect(() => componentReference('https://x/y', 'server', '1')).toThrow(/oci:\/\/HOST/);
  });
});

describe('WWW-Authenticate challenges', () => {
  it('reads bearer and basic challenges with quoted, escaped and bare values', () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:samalba/my-app:pull,push' } },
    ]);
    expect(parseChallenges('Basic realm="Registry \\"Realm\\"", Bearer realm=https://a/t, service=s')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry "Realm"' } },
      { scheme: 'bearer', params: { realm: 'https://a/t', service: 's' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('Bearer realm="unterminated')).toEqual([{ scheme: 'bearer', params: { realm: 'unterminated' } }]);
  });
});

describe('docker config.json', () => {
  it('finds a registry by host, by URL key, and Docker Hub by its index URL', () => {
    const doc = { auths: { 'https://index.docker.io/v1/': { auth: 'aHViOnB3' }, '127.0.0.1:5000': { auth: 'dTpw' }, 'http://lab.example:5000/': { auth: 'bGFiOnB3' }, 'helper.example': {} } };
    expect(dockerConfigEntry(doc, '127.0.0.1:5000')).toEqual({ auth: 'dTpw' });
    expect(dockerConfigEntry(doc, 'lab.example:5000')).toEqual({ auth: 'bGFiOnB3' });
    expect(dockerConfigEntry(doc, 'registry-1.docker.io')).toEqual({ auth: 'aHViOnB3' });
    expect(dockerConfigEntry(doc, 'helper.example')).toEqual({});
    expect(dockerConfigEntry(doc, 'other.example')).toBeUndefined();
    expect(dockerConfigEntry(null, 'x')).toBeUndefined();
  });

  it('picks as docker does: credHelpers.<host>, then credsStore, then an identity token, then user:password', () => {
    const auths = { 'a.example': { auth: 'dTpw', identitytoken: 'idt' }, 'b.example': { auth: 'dTpw' } };
    expect(dockerConfigSource({ auths, credHelpers: { 'https://a.example': 'pass' }, credsStore: 'secretservice' }, 'a.example')).toEqual({ helper: 'pass' });
    expect(dockerConfigSource({ auths, credHelpers: { 'a.example': 'pass' }, credsStore: 'secretservice' }, 'b.example')).toEqual({ helper: 'secretservice' });
    expect(dockerConfigSource({ auths }, 'a.example')).toEqual({ identityToken: 'idt' });
    expect(dockerConfigSource({ auths }, 'b.example')).toEqual({ auth: 'dTpw' });
    expect(dockerConfigSource({ auths: { 'c.example': {} } }, 'c.example')).toBeUndefined();
    expect(dockerConfigSource({ credHelpers: { 'index.docker.io': 'desktop' } }, 'registry-1.docker.io')).toEqual({ helper: 'desktop' });
    expect(helperServerName('registry-1.docker.io')).toBe('https://index.docker.io/v1/');
    expect(helperServerName('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });

  it('reads a helper\'s answer: Username <token> is an identity token, else user:password as Basic', () => {
    expect(helperCredential({ username: '<token>', secret: 'rt' }, 'h')).toEqual({ kind: 'identity', token: 'rt', source: 'h' });
    expect(helperCredential({ username: 'u', secret: 'p' }, 'h')).toEqual({ kind: 'basic', auth: Buffer.from('u:p').toString('base64'), source: 'h' });
  });
});

describe('the lander OCI artifact', () => {
  const c = { name: 'server', version: '1.0.0', asset: 'server-1.0.0.tar.gz', sha256: 'b'.repeat(64), size: 1234 };

  it('is an ORAS-style artifact: artifactType, empty config, one titled gzip layer whose digest is the archive', () => {
    const m = JSON.parse(componentManifest(c).toString());
    expect(m).toMatchObject({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: LANDER_ARTIFACT_TYPE, config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 } });
    expect(m.layers).toEqual([{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${c.sha256}`, size: 1234, annotations: { 'org.opencontainers.image.title': 'server-1.0.0.tar.gz' } }]);
    expect(sha256Digest(EMPTY_CONFIG_BYTES)).toBe(EMPTY_CONFIG.digest);
    expect(componentManifest(c).equals(componentManifest({ ...c }))).toBe(true); // same bytes: pushing twice keeps the digest
    expect(archiveLayer(componentManifest(c))).toMatchObject({ sha256: c.sha256, size: 1234 });
  });

  it('refuses a container image, a manifest list, and zero or two archive layers', () => {
    const m = JSON.parse(componentManifest(c).toString());
    const bytes = (x: unknown) => Buffer.from(JSON.stringify(x));
    expect(() => archiveLayer(bytes({ ...m, artifactType: undefined, config: { mediaType: 'application/vnd.oci.image.config.v1+json' } }))).toThrow(/container image/);
    expect(() => archiveLayer(bytes({ ...m, mediaType: 'application/vnd.oci.image.index.v1+json' }))).toThrow(/OCI image manifest/);
    expect(() => archiveLayer(bytes({ ...m, layers: [] }))).toThrow(/exactly one/);
    expect(() => archiveLayer(bytes({ ...m, layers: [m.layers[0], m.layers[0]] }))).toThrow(/exactly one/);
    expect(() => archiveLayer(bytes({ ...m, layers: [{ ...m.layers[0], digest: 'sha512:00' }] }))).toThrow(/sha256:<64 hex/);
    expect(() => archiveLayer(Buffer.from('<html>'))).toThrow(/not JSON/);
  });

  it('carries a chunk index as a second, titled layer of its own type; without one there is no index', () => {
    const index = { asset: 'server-1.0.0.tar.gz.index', sha256: 'b'.repeat(64), size: 99 };
    const bytes = componentManifest({ ...c, index });
    const m = JSON.parse(bytes.toString());
    expect(m.layers[1]).toEqual({ mediaType: INDEX_MEDIA_TYPE, digest: `sha256:${index.sha256}`, size: 99, annotations: { 'org.opencontainers.image.title': index.asset } });
    expect(componentLayers(bytes)).toMatchObject({ archive: { sha256: c.sha256 }, index: { sha256: index.sha256, size: 99 } });
    expect(componentLayers(componentManifest(c)).index).toBeUndefined();
    const doc = (x: unknown) => Buffer.from(JSON.stringify(x));
    // A layer lander does not know is ignored; two indexes or a bad digest are refused.
    expect(componentLayers(doc({ ...m, layers: [...m.layers, { mediaType: 'text/plain', digest: D, size: 1 }] })).index?.sha256).toBe(index.sha256);
    expect(() => componentLayers(doc({ ...m, layers: [...m.layers, m.layers[1]] }))).toThrow(/at most one/);
    expect(() => componentLayers(doc({ ...m, layers: [m.layers[0], { ...m.layers[1], digest: 'sha256:xyz' }] }))).toThrow(/index layer digest/);
  });
});
