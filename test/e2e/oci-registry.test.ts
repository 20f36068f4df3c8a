/**
 * OCI end to end with a real registry (Debian's docker-registry, distribution
 * 2.8) on loopback: `lander push` of pack output, `lander install` from
 * oci+http://, a version bump, a blob download cut mid-way and resumed with
 * Range, 10 roots through a registry pull-through cache, and 10 roots at once
 * through nginx `proxy_cache` with `proxy_cache_lock on`. Origin hits are
 * counted in the origin registry's own access log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { landerManifest } from '../../src/pack/outputs.ts';
import { writeTarGz } from '../helpers/archive.ts';
import { freePort } from '../helpers/free-port.ts';
import { runLander, type CliResult } from '../helpers/lander-cli.ts';
import { nginxMissing, registryMissing, startRegistry, type Registry } from '../helpers/registry.ts';

const missing = registryMissing();
const noNginx = nginxMissing();
if (process.env.CI === 'true' && (missing || noNginx)) throw new Error(`CI needs ${missing ?? noNginx}`);
if (missing) console.warn(`skipping the OCI registry tests: ${missing}`);
else if (noNginx) console.warn(`skipping the nginx proxy_cache test: ${noNginx}`);

let work: string;
let origin: Registry;
const archives: Record<string, { sha256: string; size: number; marker: string }> = {};
const cleanups: (() => Promise<unknown>)[] = [];

/** A pack --out folder with one archive per component (random bytes: incompressible, so the sizes are real). */
async function release(dir: string, comps: Record<string, { version: string; kib: number }>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const packed = [];
  for (const [name, c] of Object.entries(comps)) {
    const asset = `${name}-${c.version}.tar.gz`;
    const marker = `${name} ${c.version}`;
    const r = await writeTarGz(path.join(dir, asset), [
      { type: 'directory', name: `${name}/` },
      { name: `${name}/VERSION`, content: marker },
      { name: `${name}/blob.bin`, content: randomBytes(c.kib * 1024) },
    ], 1);
    archives[`${name}:${c.version}`] = { ...r, marker };
    packed.push({ name, version: c.version, asset, sha256: r.sha256, size: r.size });
  }
  await writeFile(path.join(dir, 'manifest.json'), landerManifest(packed));
}

async function config(name: string, registryUrls: string[], versions: Record<string, string>, extra: Record<string, unknown> = {}): Promise<string> {
  const root = path.join(work, name);
  const file = path.join(work, `${name}.json`);
  const components = Object.fromEntries(Object.entries(versions).map(([c, v]) => [c, { version: v, url: registryUrls.map((u) => `${u}/lander/${c}:{version}`) }]));
  await writeFile(file, JSON.stringify({ root, components, download: { backoffInitial: '50ms', backoffMax: '200ms' }, ...extra }));
  return file;
}

const install = (cfg: string) => runLander(['install', '--config', cfg]);
const installed = async (cfg: string, component: string) => readFile(path.join(JSON.parse(await readFile(cfg, 'utf8')).root, 'current', component, 'VERSION'), 'utf8');
/** `lander push --json`'s summary (the JSON log lines beside it have an `event`). */
const summary = (r: CliResult) => JSON.parse(r.stdout.trim().split('\n').find((l) => l.startsWith('{') && !('event' in JSON.parse(l)))!);
const ok = (r: CliResult) => expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
/** GETs of a blob that the registry answered with bytes. */
const blobServes = (reg: Registry, sha256: string, since = 0) => reg.requests().slice(since).filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/sha256:${sha256}`) && (q.status === 200 || q.status === 206)).length;

beforeAll(async () => {
  if (missing) return;
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-oci-'));
  origin = await startRegistry(path.join(work, 'origin'));
  cleanups.push(() => origin.stop());
  await release(path.join(work, 'rel-1'), { server: { version: '1.0.0', kib: 384 }, 'cuda-libs': { version: 'cu128-v1', kib: 768 } });
  await release(path.join(work, 'rel-2'), { server: { version: '1.1.0', kib: 384 } });
  const pushed = await runLander(['push', path.join(work, 'rel-1'), `oci+http://${origin.host}/lander`, '--json']);
  ok(pushed);
  expect(summary(pushed).components.map((c: { blobsPushed: number }) => c.blobsPushed)).toEqual([2, 2]); // the archive and the empty config, in each repository
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)('OCI registry (docker-registry)', () => {
  it('push twice changes nothing; install from oci+http://; a bump fetches only the new core', async () => {
    const before = origin.requests().length;
    const again = await runLander(['push', path.join(work, 'rel-1'), `oci+http://${origin.host}/lander`, '--json']);
    ok(again);
    const comps = summary(again).components;
    expect(comps.map((c: { blobsPushed: number; manifestPushed: boolean }) => [c.blobsPushed, c.manifestPushed])).toEqual([[0, false], [0, false]]);
    expect(origin.requests().slice(before).filter((q) => q.method !== 'HEAD')).toEqual([]);

    const cfg = await config('direct', [`oci+http://${origin.host}`], { server: '1.0.0', 'cuda-libs': 'cu128-v1' });
    ok(await install(cfg));
    expect(await installed(cfg, 'server')).toBe('server 1.0.0');
    expect(await installed(cfg, 'cuda-libs')).toBe('cuda-libs cu128-v1');

    ok(await runLander(['push', path.join(work, 'rel-2'), `oci+http://${origin.host}/lander`]));
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('"1.0.0"', '"1.1.0"'));
    const bump = await install(cfg);
    ok(bump);
    expect(await installed(cfg, 'server')).toBe('server 1.1.0');
    const results = Object.fromEntries(bump.logs.filter((l) => l.event === 'install.result').map((l) => [l.component, l.status]));
    expect(results).toEqual({ server: 'installed', 'cuda-libs': 'kept' });
  }, 60_000);

  it('resumes a blob download cut mid-way with a Range request', async () => {
    const a = archives['cuda-libs:cu128-v1']!;
    const seen: { range?: string; path: string }[] = [];
    let cut = false;
    // A proxy of the test's own in front of the registry: the first GET of the blob is cut after half its bytes.
    const proxy = http.createServer((req, res) => {
      seen.push({ path: req.url!, ...(req.headers.range ? { range: req.headers.range } : {}) });
      const up = http.request(`${origin.url}${req.url}`, { method: req.method, headers: { ...req.headers, host: origin.host }, agent: false }, (ur) => {
        res.writeHead(ur.statusCode!, ur.headers);
        const cutThis = !cut && req.url!.endsWith(`/blobs/sha256:${a.sha256}`) && ur.statusCode === 200;
        if (!cutThis) return void ur.pipe(res);
        cut = true;
        let n = 0;
        ur.on('data', (c: Buffer) => {
          const room = Math.floor(a.size / 2) - n;
          if (room <= 0) return;
          n += Math.min(room, c.length);
          // Cut once the half is handed to the kernel, so the client gets all of it before the connection ends.
          res.write(c.subarray(0, room), () => { if (n >= Math.floor(a.size / 2)) res.socket?.destroy(); });
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    const port = await freePort();
    await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => proxy.close(r)));
    const since = origin.requests().length;
    const cfg = await config('resume', [`oci+http://127.0.0.1:${port}`], { 'cuda-libs': 'cu128-v1' });
    const r = await install(cfg);
    ok(r);
    expect(await installed(cfg, 'cuda-libs')).toBe('cuda-libs cu128-v1');
    expect(cut).toBe(true);
    const blobGets = seen.filter((s) => s.path.endsWith(a.sha256));
    expect(blobGets).toHaveLength(2);
    // The resume asks for the rest from what arrived (all of the half, unless the cut lost some in flight).
    const from = Number(/^bytes=(\d+)-$/.exec(blobGets[1]!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(Math.floor(a.size / 2));
    const served = origin.requests().slice(since).filter((q) => q.path.endsWith(a.sha256));
    expect(served.map((q) => q.status)).toEqual([200, 206]);
    expect(served[1]!.bytes).toBe(a.size - from); // the registry sent only the rest
    // At most the half that came before the cut, plus the rest: never the whole archive again.
    expect(Number(r.logs.find((l) => l.event === 'install.verified')!.downloadedBytes)).toBeLessThanOrEqual(Math.floor(a.size / 2) + a.size - from);
    expect(r.logs.some((l) => l.event === 'download.retry')).toBe(true);
  }, 60_000);

  it('a cache that is down: the origin after it serves the manifest and the blob', async () => {
    const dead = await freePort(); // nothing listens there
    const cfg = await config('fallback', [`oci+http://127.0.0.1:${dead}`, `oci+http://${origin.host}`], { server: '1.0.0' });
    const r = await install(cfg);
    ok(r);
    expect(await installed(cfg, 'server')).toBe('server 1.0.0');
    expect(r.logs.find((l) => l.event === 'install.verified')?.downloadedBytes).toBe(archives['server:1.0.0']!.size);
  }, 60_000);

  it('10 roots through a docker-registry pull-through cache: the origin serves each blob at most twice in all', async () => {
    const cache = await startRegistry(path.join(work, 'cache'), { proxyOf: origin.url });
    cleanups.push(() => cache.stop());
    const since = origin.requests().length;
    const cfgs = await Promise.all(Array.from({ length: 10 }, (_, i) => config(`cached-${i}`, [`oci+http://${cache.host}`, `oci+http://${origin.host}`], { server: '1.1.0', 'cuda-libs': 'cu128-v1' })));
    // distribution 2.8's cache fetches a missing blob twice (once to store, once to stream to the client) and
    // streams straight from the origin while that store is in flight: the first root goes alone, the other
    // nine once the cache holds both blobs.
    const results = [await install(cfgs[0]!)];
    const stored = (sha: string) => existsSync(path.join(work, 'cache', 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', sha.slice(0, 2), sha, 'data'));
    for (let i = 0; i < 400 && !(stored(archives['server:1.1.0']!.sha256) && stored(archives['cuda-libs:cu128-v1']!.sha256)); i++) await new Promise((r) => setTimeout(r, 50));
    results.push(...(await Promise.all(cfgs.slice(1).map(install))));
    for (const r of results) ok(r);
    for (const cfg of cfgs) expect(await installed(cfg, 'server')).toBe('server 1.1.0');
    for (const key of ['server:1.1.0', 'cuda-libs:cu128-v1']) {
      const n = blobServes(origin, archives[key]!.sha256, since);
      expect(n, key).toBeGreaterThanOrEqual(1);
      expect(n, key).toBeLessThanOrEqual(2);
    }
    // Every root got its bytes from the cache, none fell back to the origin.
    for (const r of results) expect(r.logs.filter((l) => l.event === 'download.start').every((l) => String(l.url).startsWith(`http://${cache.host}/`))).toBe(true);
  }, 120_000);

  it.skipIf(noNginx !== undefined)('10 roots at once through nginx proxy_cache with proxy_cache_lock: the origin serves each archive once', async () => {
    const dir = path.join(work, 'nginx');
    for (const d of ['cache', 'tmp']) await mkdir(path.join(dir, d), { recursive: true });
    // Between nginx and the origin, a hop of the test's own holds each blob's answer until all ten roots have
    // fetched that component's manifest, so their blob requests all reach nginx while the first is in flight.
    const manifests = new Map<string, number>();
    const hop = http.createServer((req, res) => {
      const m = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(req.url!);
      if (m?.[2] === 'manifests') manifests.set(m[1]!, (manifests.get(m[1]!) ?? 0) + 1);
      const forward = () => {
        const up = http.request(`${origin.url}${req.url}`, { method: req.method, headers: { ...req.headers, host: origin.host }, agent: false }, (ur) => {
          res.writeHead(ur.statusCode!, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      };
      if (m?.[2] !== 'blobs' || req.method !== 'GET') return forward();
      let tries = 0;
      const wait = () => ((manifests.get(m[1]!) ?? 0) >= 10 || ++tries > 600 ? forward() : setTimeout(wait, 50));
      wait();
    });
    const hopPort = await freePort();
    await new Promise<void>((r) => hop.listen(hopPort, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { hop.closeAllConnections(); hop.close(r); }));
    const upstream = `http://127.0.0.1:${hopPort}`;
    const port = await freePort();
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp/${t};`).join('\n');
    await writeFile(path.join(dir, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
${temp}
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=blobs:1m max_size=256m inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:${port};
    location ~ ^/v2/.+/blobs/sha256: {
      proxy_pass ${upstream};
      proxy_http_version 1.1;
      proxy_cache blobs;
      proxy_cache_key $uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 120s;
      proxy_cache_lock_age 120s;
    }
    location / {
      proxy_pass ${upstream};
      proxy_http_version 1.1;
    }
  }
}
`);
    const nginx: ChildProcess = spawn('/usr/sbin/nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
    const exited = new Promise((r) => nginx.once('exit', r));
    cleanups.push(async () => { nginx.kill('SIGTERM'); await exited; });
    for (let i = 0; i < 200; i++) {
      const up = await new Promise<boolean>((r) => http.get(`http://127.0.0.1:${port}/v2/`, { agent: false }, (res) => { res.resume(); r(res.statusCode === 200); }).on('error', () => r(false)));
      if (up) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const since = origin.requests().length;
    const cfgs = await Promise.all(Array.from({ length: 10 }, (_, i) => config(`nginx-${i}`, [`oci+http://127.0.0.1:${port}`], { server: '1.1.0', 'cuda-libs': 'cu128-v1' })));
    const results = await Promise.all(cfgs.map(install));
    for (const r of results) ok(r);
    for (const cfg of cfgs) expect(await installed(cfg, 'cuda-libs')).toBe('cuda-libs cu128-v1');
    for (const key of ['server:1.1.0', 'cuda-libs:cu128-v1']) expect(blobServes(origin, archives[key]!.sha256, since), key).toBe(1);
  }, 120_000);
});
