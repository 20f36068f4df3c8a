/**
 * Chunked archives through a real OCI registry (Debian's docker-registry):
 * `lander push` publishes `lander pack` output with the chunk index as a
 * second layer; `lander install` from oci+http:// takes the index layer and
 * fetches blob ranges; a bump fetches a fraction of the archive (counted in
 * the registry's own access log), and the tree is what GNU tar extracts.
 * A registry behind a hop that ignores Range: the one pass, as without an
 * index. A cache that is down before the origin: the index and the ranges
 * come from the origin. A docker-registry pull-through cache: cold, it
 * answers a range with the whole blob (the one pass); warm, with ranges.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { componentLayers } from '../../src/fetch/oci/artifact.ts';
import { freePort } from '../helpers/free-port.ts';
import { complaints, runLander, type CliResult } from '../helpers/lander-cli.ts';
import { registryMissing, startRegistry, type Registry } from '../helpers/registry.ts';
import { libBytes, makeSourceTree, textBytes } from '../helpers/source-tree.ts';
import { haveGnuTar, readTree, type Tree } from '../helpers/tar-oracle.ts';

const missing = registryMissing() ?? (haveGnuTar() ? undefined : 'GNU tar run as uid 65534 through setpriv (needs root)');
if (process.env.CI === 'true' && missing) throw new Error(`CI needs ${missing}`);
if (missing) console.warn(`skipping the chunked OCI tests: ${missing}`);

const LIB = 768 * 1024;
let work: string;
let origin: Registry;
const out: Record<string, string> = {};
const cleanups: (() => Promise<unknown>)[] = [];
const asset = (v: string) => `core-${v}.tar.gz`;
const ok = (r: CliResult) => expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
/** `lander push --json`'s summary (the JSON log lines beside it have an `event`). */
const summary = (r: CliResult) => JSON.parse(r.stdout.trim().split('\n').find((l) => l.startsWith('{') && !('event' in JSON.parse(l)))!);

async function release(v: string, overrides: Record<string, Buffer>): Promise<void> {
  const src = path.join(work, `src-${v}`);
  out[v] = path.join(work, `out-${v}`);
  await makeSourceTree(src, { files: 40, libBytes: LIB, overrides });
  const rules = path.join(work, 'rules.json');
  await writeFile(rules, JSON.stringify({ default: 'server', components: { server: { asset: 'core-{version}.tar.gz' } }, rules: [{ prefix: '_internal/', component: 'server' }] }));
  const r = await runLander(['pack', src, '--out', out[v]!, '--rules', rules, '--component-version', `server=${v}`], { SOURCE_DATE_EPOCH: '1767225600' });
  expect(complaints(r)).toEqual([]);
  ok(r);
}

/** GNU tar's extraction of an archive file, as uid 65534 (piped in asynchronously: Deno's spawnSync stalls on a large stdin). */
async function gnuTree(file: string): Promise<Tree> {
  const dir = path.join(work, `gnu-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, 65534, 65534);
  try {
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'tar', '-xzf', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'], env: { PATH: process.env.PATH, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
    const done = new Promise<number | null>((r) => child.once('close', r));
    child.stdin!.end(await readFile(file));
    expect(await done, stderr).toBe(0);
    return await readTree(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function config(name: string, registries: string[], version: string): Promise<string> {
  const file = path.join(work, `${name}.json`);
  await writeFile(file, JSON.stringify({
    root: path.join(work, name),
    components: { server: { version, url: registries.map((u) => `${u}/lander/server:{version}`) } },
    download: { retries: 1, backoffInitial: '10ms', backoffMax: '50ms', connectTimeout: '2s', idleTimeout: '5s' },
  }));
  return file;
}

const rootOf = async (cfg: string) => JSON.parse(await readFile(cfg, 'utf8')).root as string;
/** Bytes the registry sent for GETs of one blob since `since`. */
const blobBytes = (reg: Registry, sha256: string, since: number) => reg.requests().slice(since).filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/sha256:${sha256}`)).reduce((n, q) => n + q.bytes, 0);
const sha = async (file: string) => (await readFile(`${file}.sha256`, 'utf8')).split(/\s/)[0]!;

beforeAll(async () => {
  if (missing) return;
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-oci-chunked-'));
  await chmod(work, 0o711); // uid 65534 must reach its own folder inside, for GNU tar
  origin = await startRegistry(path.join(work, 'origin'));
  cleanups.push(() => origin.stop());
  await release('1.0', {});
  // The bump: three modules edited, 3 KB inserted at 40% of the launcher library.
  const lib = libBytes(LIB, 1);
  const at = Math.floor(lib.length * 0.4);
  await release('2.0', {
    'voicebox-server-cuda': Buffer.concat([lib.subarray(0, at), textBytes(3000, 9), lib.subarray(at)]),
    '_internal/pkg1/mod1.py': Buffer.from('__version__ = "2.0"\n'),
    '_internal/pkg2/mod7.py': textBytes(9000, 77),
  });
  await release('3.0', { '_internal/pkg0/mod0.py': textBytes(4000, 400) });
}, 120_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)('chunked archives through an OCI registry', () => {
  it('push adds the index as a second layer; install takes ranges; a bump fetches a fraction; the tree is GNU tar\'s', async () => {
    const first = await runLander(['push', out['1.0']!, `oci+http://${origin.host}/lander`, '--json']);
    ok(first);
    expect(summary(first).components.map((c: { blobsPushed: number }) => c.blobsPushed)).toEqual([3]); // the empty config, the archive, the index
    const again = await runLander(['push', out['1.0']!, `oci+http://${origin.host}/lander`, '--json']);
    ok(again);
    expect(summary(again).components.map((c: { blobsPresent: number; manifestPushed: boolean }) => [c.blobsPresent, c.manifestPushed])).toEqual([[3, false]]);
    // The manifest as the registry serves it: the archive layer and the index layer, each titled.
    const m = await new Promise<Buffer>((resolve, reject) => http.get(`${origin.url}/v2/lander/server/manifests/1.0`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c)).on('end', () => resolve(Buffer.concat(parts)));
    }).on('error', reject));
    const layers = componentLayers(m);
    const a1 = path.join(out['1.0']!, asset('1.0'));
    expect(layers.archive).toMatchObject({ sha256: await sha(a1), annotations: { 'org.opencontainers.image.title': asset('1.0') } });
    // The sidecar binds the index by its head; the registry addresses the blob by the whole file.
    expect(layers.index).toMatchObject({ sha256: createHash('sha256').update(await readFile(`${a1}.index`)).digest('hex'), mediaType: 'application/vnd.lander.chunk-index.v2', annotations: { 'org.opencontainers.image.title': `${asset('1.0')}.index` } });

    const cfg = await config('direct', [`oci+http://${origin.host}`], '1.0');
    const since1 = origin.requests().length;
    const cold = await runLander(['install', '--config', cfg]);
    ok(cold);
    // Planned and fetched off the main thread, with the registries' auth, as from an HTTP mirror.
    expect(cold.logs.find((l) => l.event === 'install.chunked-plan')).toMatchObject({ links: 0, copies: 0, worker: true });
    const archive1 = await sha(a1);
    expect(origin.requests().slice(since1).filter((q) => q.path.endsWith(archive1) && q.method === 'GET').every((q) => q.status === 206)).toBe(true);
    expect(await readTree(path.join(await rootOf(cfg), 'current'))).toEqual(await gnuTree(a1));

    ok(await runLander(['push', out['2.0']!, `oci+http://${origin.host}/lander`]));
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('"version":"1.0"', '"version":"2.0"'));
    const a2 = path.join(out['2.0']!, asset('2.0'));
    const archive2 = await sha(a2);
    const since2 = origin.requests().length;
    const bump = await runLander(['install', '--config', cfg]);
    ok(bump);
    const size = (await stat(a2)).size;
    const served = blobBytes(origin, archive2, since2);
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(size * 0.25);
    expect(bump.logs.find((l) => l.event === 'install.chunked-plan')!.links as number).toBeGreaterThan(30);
    expect(bump.logs.find((l) => l.event === 'install.verified')!.downloadedBytes as number).toBeLessThan(size * 0.25);
    expect(await readTree(path.join(await rootOf(cfg), 'current'))).toEqual(await gnuTree(a2));
  }, 120_000);

  it('a cache that is down before the origin: the index and the ranges come from the origin', async () => {
    const dead = await freePort(); // nothing listens there
    const cfg = await config('fallback', [`oci+http://127.0.0.1:${dead}`, `oci+http://${origin.host}`], '2.0');
    const r = await runLander(['install', '--config', cfg]);
    ok(r);
    expect(r.logs.some((l) => l.event === 'install.chunked-plan')).toBe(true);
    expect(await readTree(path.join(await rootOf(cfg), 'current'))).toEqual(await gnuTree(path.join(out['2.0']!, asset('2.0'))));
  }, 60_000);

  it('a registry behind a hop that ignores Range: the one pass', async () => {
    ok(await runLander(['push', out['3.0']!, `oci+http://${origin.host}/lander`]));
    const hop = http.createServer((req, res) => {
      const headers = { ...req.headers, host: origin.host };
      delete headers.range;
      const up = http.request(`${origin.url}${req.url}`, { method: req.method, headers, agent: false }, (ur) => {
        res.writeHead(ur.statusCode!, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    const port = await freePort();
    await new Promise<void>((r) => hop.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { hop.closeAllConnections(); hop.close(r); }));
    const cfg = await config('no-ranges', [`oci+http://127.0.0.1:${port}`], '3.0');
    const r = await runLander(['install', '--config', cfg]);
    ok(r);
    expect(r.logs.some((l) => l.event === 'install.index-unavailable')).toBe(true);
    const a3 = path.join(out['3.0']!, asset('3.0'));
    expect(r.logs.find((l) => l.event === 'install.verified')!.downloadedBytes).toBe((await stat(a3)).size);
    expect(await readTree(path.join(await rootOf(cfg), 'current'))).toEqual(await gnuTree(a3));
  }, 60_000);

  it('through a docker-registry pull-through cache: cold, the one pass (the cache streams the whole blob); warm, ranges from the cache', async () => {
    const cache = await startRegistry(path.join(work, 'cache'), { proxyOf: origin.url });
    cleanups.push(() => cache.stop());
    const mirrors = [`oci+http://${cache.host}`, `oci+http://${origin.host}`];
    const a2 = path.join(out['2.0']!, asset('2.0'));
    const cold = await runLander(['install', '--config', await config('cache-cold', mirrors, '2.0')]);
    ok(cold);
    expect(cold.logs.some((l) => l.event === 'install.index-unavailable')).toBe(true);
    expect(await readTree(path.join(work, 'cache-cold', 'current'))).toEqual(await gnuTree(a2));
    // distribution 2.8 stores a proxied blob in the background: wait until it holds the archive.
    const archive = await sha(a2);
    const stored = path.join(work, 'cache', 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', archive.slice(0, 2), archive, 'data');
    for (let i = 0; i < 400 && !(await stat(stored).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
    const since = cache.requests().length;
    const warm = await runLander(['install', '--config', await config('cache-warm', mirrors, '2.0')]);
    ok(warm);
    expect(warm.logs.some((l) => l.event === 'install.index-unavailable')).toBe(false);
    expect(warm.logs.some((l) => l.event === 'install.chunked-plan')).toBe(true);
    expect(cache.requests().slice(since).some((q) => q.path.endsWith(archive) && q.status === 206)).toBe(true);
    expect(await readTree(path.join(work, 'cache-warm', 'current'))).toEqual(await gnuTree(a2));
  }, 60_000);
});
