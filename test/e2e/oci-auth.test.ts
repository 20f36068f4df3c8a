/**
 * Registry auth and blob storage, against a registry of the test's own on
 * loopback (docker-registry's token auth needs a TLS token server; this one
 * speaks the same challenge protocol): a bearer challenge answered with
 * Basic credentials from docker's config.json, a token file, a blob
 * redirected to "blob storage" on another origin that must not see the
 * registry's token (also for a chunked pack's index blob and archive
 * ranges, with a token that expires between them), and the refusals: no credentials, a container image,
 * a pinned digest that does not match.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { componentManifest } from '../../src/fetch/oci/artifact.ts';
import { resolveOciSource } from '../../src/fetch/oci/resolve.ts';
import { writeTarGz } from '../helpers/archive.ts';
import { freePort } from '../helpers/free-port.ts';
import { complaints, runLander } from '../helpers/lander-cli.ts';
import { snapshotTree } from '../helpers/release.ts';
import { makeSourceTree } from '../helpers/source-tree.ts';

const USER_PASS = Buffer.from('alice:s3cret').toString('base64');
const FILE_TOKEN = 'file-token-0123456789';
let work: string;
let archive: Buffer;
let sha: string;
let regPort: number;
let storagePort: number;
const log: { server: string; method: string; path: string; authorization?: string; range?: string }[] = [];
const servers: http.Server[] = [];
/** For the expiry test: a token may fetch one blob only, and the first blob body is cut half-way (firstOnly: only the first token expires, nothing is cut). */
const expiry = { on: false, spent: new Set<string>(), issued: 0, cut: false, firstOnly: false };
/** A chunked pack served as lander/core:2.0: blob digest → bytes. */
const chunked = new Map<string, Buffer>();
let coreManifest: Buffer;

async function listen(handler: http.RequestListener): Promise<number> {
  const port = await freePort();
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
  return port;
}

const dl = { concurrency: 1, connectTimeout: 5000, idleTimeout: 5000, retries: 0, backoffInitial: 10, backoffMax: 10 };

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-oci-auth-'));
  const file = path.join(work, 'server-1.0.0.tar.gz');
  await writeTarGz(file, [{ name: 'server/VERSION', content: 'server 1.0.0' }]);
  archive = await readFile(file);
  sha = createHash('sha256').update(archive).digest('hex');
  const manifest = componentManifest({ name: 'server', version: '1.0.0', asset: 'server-1.0.0.tar.gz', sha256: sha, size: archive.length });
  const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 1 }, layers: [] }));
  // A chunked pack (archive + index) as lander/core:2.0, its blobs in "blob storage" too.
  const src = path.join(work, 'src');
  await makeSourceTree(src, { files: 12, libBytes: 96 * 1024 });
  await writeFile(path.join(work, 'rules.json'), JSON.stringify({ default: 'core', components: { core: { asset: 'core-{version}.tar.gz' } }, rules: [{ prefix: '_internal/', component: 'core' }] }));
  const packed = await runLander(['pack', src, '--out', path.join(work, 'packed'), '--rules', path.join(work, 'rules.json'), '--component-version', 'core=2.0']);
  expect(packed.code, packed.stderr).toBe(0);
  const coreArchive = await readFile(path.join(work, 'packed', 'core-2.0.tar.gz'));
  const coreIndex = await readFile(path.join(work, 'packed', 'core-2.0.tar.gz.index'));
  const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  chunked.set(hex(coreArchive), coreArchive).set(hex(coreIndex), coreIndex);
  coreManifest = componentManifest({ name: 'core', version: '2.0', asset: 'core-2.0.tar.gz', sha256: hex(coreArchive), size: coreArchive.length, index: { asset: 'core-2.0.tar.gz.index', sha256: hex(coreIndex), size: coreIndex.length } });
  storagePort = await listen((req, res) => {
    log.push({ server: 'storage', method: req.method!, path: req.url!, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(req.headers.range ? { range: req.headers.range } : {}) });
    if (req.headers.authorization) { res.writeHead(400).end('only one auth mechanism allowed'); return; } // as S3 answers
    const held = chunked.get(/^\/chunked\/([0-9a-f]{64})\?/.exec(req.url!)?.[1] ?? '');
    if (held) {
      const r = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!r) { res.writeHead(200, { 'content-length': held.length }).end(held); return; }
      const [a, b] = [Number(r[1]), Math.min(Number(r[2]), held.length - 1)];
      res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${held.length}` }).end(held.subarray(a, b + 1));
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = range && req.headers['if-range'] === `"${sha}"` ? Number(range[1]) : 0;
    if (from > 0) {
      res.writeHead(206, { 'content-length': archive.length - from, 'content-range': `bytes ${from}-${archive.length - 1}/${archive.length}`, etag: `"${sha}"` }).end(archive.subarray(from));
      return;
    }
    if (expiry.on && !expiry.cut) {
      expiry.cut = true;
      res.writeHead(200, { 'content-length': archive.length, etag: `"${sha}"` });
      res.write(archive.subarray(0, archive.length >> 1), () => res.socket?.destroy());
      return;
    }
    res.writeHead(200, { 'content-length': archive.length, etag: `"${sha}"` }).end(archive);
  });
  regPort = await listen((req, res) => {
    const auth = req.headers.authorization;
    log.push({ server: 'registry', method: req.method!, path: req.url!, ...(auth ? { authorization: auth } : {}) });
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/token') {
      if (auth !== `Basic ${USER_PASS}`) { res.writeHead(401).end(); return; }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok:${u.searchParams.get('scope')}${expiry.on ? `:${++expiry.issued}` : ''}` }));
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(u.pathname);
    const scoped = m !== null && (auth === `Bearer tok:repository:${m[1]}:pull` || (expiry.on && auth?.startsWith(`Bearer tok:repository:${m[1]}:pull:`)));
    const spent = expiry.on && m?.[2] === 'blobs' && auth !== undefined && expiry.spent.has(auth) && (!expiry.firstOnly || auth.endsWith(':1'));
    if (expiry.on && m?.[2] === 'blobs' && auth) expiry.spent.add(auth);
    const ok = !spent && (auth === `Bearer ${FILE_TOKEN}` || scoped);
    if (!ok) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${regPort}/token",service="stand-in"${m ? `,scope="repository:${m[1]}:pull"` : ''}` }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (u.pathname === '/v2/') { res.writeHead(200).end('{}'); return; }
    if (m?.[2] === 'manifests' && m[1] === 'lander/server') { res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest); return; }
    if (m?.[2] === 'manifests' && m[1] === 'lander/core') { res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(coreManifest); return; }
    if (m?.[2] === 'blobs' && m[1] === 'lander/core' && chunked.has(m[3]!.replace('sha256:', ''))) { res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/chunked/${m[3]!.replace('sha256:', '')}?X-Amz-Signature=def` }).end(); return; }
    if (m?.[2] === 'manifests' && m[1] === 'lander/image') { res.writeHead(200).end(image); return; }
    if (m?.[2] === 'blobs' && m[3] === `sha256:${sha}`) { res.writeHead(307, { location: `http://127.0.0.1:${storagePort}/bucket/${sha}?X-Amz-Signature=abc` }).end(); return; }
    res.writeHead(404).end();
  });
});

afterAll(async () => {
  for (const s of servers) await new Promise((r) => { s.closeAllConnections(); s.close(r); });
  await rm(work, { recursive: true, force: true });
});

describe('OCI auth and blob storage', () => {
  it('answers the bearer challenge with docker config.json credentials; the blob storage it redirects to gets no token', async () => {
    const docker = path.join(work, 'docker');
    await mkdir(docker, { recursive: true });
    await writeFile(path.join(docker, 'config.json'), JSON.stringify({ auths: { [`127.0.0.1:${regPort}`]: { auth: USER_PASS } } }));
    const cfg = path.join(work, 'a.json');
    await writeFile(cfg, JSON.stringify({ root: path.join(work, 'root-a'), components: { server: { version: '1.0.0', url: `oci+http://127.0.0.1:${regPort}/lander/server:{version}` } }, download: { retries: 0 } }));
    log.length = 0;
    const r = await runLander(['install', '--config', cfg], { DOCKER_CONFIG: docker });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await readFile(path.join(work, 'root-a', 'current', 'server', 'VERSION'), 'utf8')).toBe('server 1.0.0');
    expect(log.find((l) => l.path.startsWith('/token'))?.authorization).toBe(`Basic ${USER_PASS}`);
    expect(log.filter((l) => l.path.includes('/manifests/') && l.authorization === 'Bearer tok:repository:lander/server:pull')).toHaveLength(1);
    const storage = log.filter((l) => l.server === 'storage');
    expect(storage).toHaveLength(1);
    expect(storage[0]!.authorization).toBeUndefined();
  });

  it('sends a token file as Bearer, without asking a token service', async () => {
    const tokenFile = path.join(work, 'token');
    await writeFile(tokenFile, `${FILE_TOKEN}\n`);
    const cfg = path.join(work, 'b.json');
    await writeFile(cfg, JSON.stringify({ root: path.join(work, 'root-b'), components: { server: { version: '1.0.0', url: `oci+http://127.0.0.1:${regPort}/lander/server:{version}` } }, registries: { [`127.0.0.1:${regPort}`]: { tokenFile } } }));
    log.length = 0;
    const r = await runLander(['install', '--config', cfg], { DOCKER_CONFIG: path.join(work, 'none') });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(log.filter((l) => l.server === 'registry').every((l) => l.authorization === `Bearer ${FILE_TOKEN}`)).toBe(true);
    expect(log.some((l) => l.path.startsWith('/token'))).toBe(false);
  });

  it('a token that expires before a retry: lander gets a new one and resumes from the partial download', async () => {
    const docker = path.join(work, 'docker');
    const cfg = path.join(work, 'c.json');
    await writeFile(cfg, JSON.stringify({ root: path.join(work, 'root-c'), components: { server: { version: '1.0.0', url: `oci+http://127.0.0.1:${regPort}/lander/server:{version}` } }, download: { retries: 2, backoffInitial: '20ms', backoffMax: '50ms' } }));
    Object.assign(expiry, { on: true, cut: false, issued: 0 });
    log.length = 0;
    try {
      const r = await runLander(['install', '--config', cfg], { DOCKER_CONFIG: docker });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(await readFile(path.join(work, 'root-c', 'current', 'server', 'VERSION'), 'utf8')).toBe('server 1.0.0');
      expect(r.logs.filter((l) => l.event === 'download.reauth')).toHaveLength(1);
      expect(expiry.issued).toBe(2);
      const ranges = log.filter((l) => l.server === 'storage').map((l) => l.range);
      expect(ranges).toHaveLength(2);
      expect(ranges[0]).toBeUndefined();
      // The second run resumes from what the first one kept (the half, unless the cut lost some in flight).
      const from = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1] ?? 0);
      expect(from).toBeLessThanOrEqual(archive.length >> 1);
      expect(r.logs.find((l) => l.event === 'install.verified')?.downloadedBytes).toBe(archive.length - from);
    } finally {
      expiry.on = false;
    }
  });

  it('a chunked pack: the index blob and the archive ranges go to blob storage without the token; a token that expires between them is renewed once', async () => {
    const docker = path.join(work, 'docker');
    const cfg = path.join(work, 'd.json');
    await writeFile(cfg, JSON.stringify({ root: path.join(work, 'root-d'), components: { core: { version: '2.0', url: `oci+http://127.0.0.1:${regPort}/lander/core:{version}` } }, download: { retries: 1, backoffInitial: '10ms', backoffMax: '20ms' } }));
    Object.assign(expiry, { on: true, cut: true, issued: 0, firstOnly: true });
    expiry.spent.clear();
    log.length = 0;
    try {
      const r = await runLander(['install', '--config', cfg], { DOCKER_CONFIG: docker });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(await snapshotTree(path.join(work, 'root-d', 'current'))).toEqual(await snapshotTree(path.join(work, 'src')));
      expect(r.logs.filter((l) => l.event === 'install.chunked-plan').length).toBeGreaterThan(0);
      // The first token fetched the index, was refused for the ranges, and a second one finished the install.
      expect(r.logs.filter((l) => l.event === 'download.reauth')).toHaveLength(1);
      expect(expiry.issued).toBe(2);
      const storage = log.filter((l) => l.server === 'storage');
      expect(storage.every((l) => l.authorization === undefined)).toBe(true);
      expect(storage.some((l) => /^bytes=\d+-\d+$/.test(l.range ?? ''))).toBe(true);
      expect(complaints(r).every((l) => !l.includes(`tok:`))).toBe(true);
    } finally {
      Object.assign(expiry, { on: false, firstOnly: false });
    }
  });

  it('refuses with a reason: no credentials, a container image, a pinned digest that differs', async () => {
    const none = async () => undefined;
    const spec = (url: string, extra = {}) => ({ name: 'server', version: '1.0.0', urls: [url], restart: true, ...extra });
    const reg = `oci+http://127.0.0.1:${regPort}`;
    await expect(resolveOciSource(spec(`${reg}/lander/server:1.0.0`), { download: dl, credentials: none })).rejects.toMatchObject({ code: 'ERR_REGISTRY_AUTH', message: expect.stringMatching(/token service .* answered HTTP 401 \(no credentials for it: docker login, or a tokenFile\)/) });
    const creds = async () => ({ kind: 'basic' as const, auth: USER_PASS, source: 'test' });
    await expect(resolveOciSource(spec(`${reg}/lander/image:1`), { download: dl, credentials: creds })).rejects.toMatchObject({ code: 'ERR_OCI_MANIFEST', message: expect.stringMatching(/container image/) });
    await expect(resolveOciSource(spec(`${reg}/lander/server@sha256:${'f'.repeat(64)}`), { download: dl, credentials: creds })).rejects.toMatchObject({ code: 'ERR_DIGEST_MISMATCH' });
    await expect(resolveOciSource(spec(`${reg}/lander/server:1.0.0`, { sha256: 'e'.repeat(64) }), { download: dl, credentials: creds })).rejects.toMatchObject({ code: 'ERR_DIGEST_MISMATCH', message: expect.stringMatching(/config pins e{64}/) });
    const good = await resolveOciSource(spec(`${reg}/lander/server:1.0.0`), { download: dl, credentials: creds });
    expect(good).toMatchObject({ sha256: sha, size: archive.length, urls: [`http://127.0.0.1:${regPort}/v2/lander/server/blobs/sha256:${sha}`] });
    expect(good.headers[good.urls[0]!]).toEqual({ authorization: 'Bearer tok:repository:lander/server:pull' });
    // An http(s) mirror after the registry is kept as it is, and gets no token; the registry's digest checks its bytes too.
    const mixed = await resolveOciSource(spec(`${reg}/lander/server:1.0.0`, { urls: [`${reg}/lander/server:1.0.0`, 'https://mirror.example/server-1.0.0.tar.gz'] }), { download: dl, credentials: creds });
    expect(mixed.urls).toEqual([good.urls[0], 'https://mirror.example/server-1.0.0.tar.gz']);
    expect(Object.keys(mixed.headers)).toEqual([good.urls[0]]);
  });
});
