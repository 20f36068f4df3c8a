/**
 * Downloads through a real proxy on loopback: Debian's squid (installed by
 * .ci/run), started here with a generated minimal config. Archives and
 * sidecars over plain http (absolute-URI requests) and over https (a CONNECT
 * tunnel, TLS to the origin inside it), by the real `lander install`; small
 * files (manifests, sidecars) in-process. Every URL is on 127.0.0.1, which
 * lander exempts by default, so the tests set NO_PROXY explicitly empty and
 * prove the traffic went through squid from its access log. The https
 * origin is reachable only through squid: squid connects from 127.0.0.2
 * (`tcp_outgoing_address`), the origin drops every other peer and counts
 * the bytes it sends inside the tunnel. `lander push` to a real registry
 * (docker-registry, on http and on https) goes through squid the same way:
 * the registry logs every request from squid's address, none from lander's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { registryMissing, startRegistry, type Registry } from '../helpers/registry.ts';
import { landerManifest } from '../../src/pack/outputs.ts';
import { fetchText } from '../../src/fetch/fetch-text.ts';
import { freePort } from '../helpers/free-port.ts';
import { makeTestCa } from '../helpers/test-ca.ts';

const SQUID = ['/usr/sbin/squid', '/usr/bin/squid'].find((p) => existsSync(p));
let work: string;
let srv: TestServer;
let squid: ChildProcess | undefined;
let proxyPort = 0;
let tlsProxyPort = 0;
let tlsServer: https.Server | undefined;
let tlsOrigin = '';
let archive: Buffer;
/** Body bytes the https origin sent to squid (its only allowed peer), and clients it refused. */
const tunnelled = { bytes: 0, refused: 0 };
const SQUID_ADDRESS = '127.0.0.2';

async function waitForPort(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`squid did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Access-log lines (squid writes one per finished transaction), polled until `want` matches or a timeout. */
async function accessLog(want?: RegExp, file = 'access.log'): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = await readFile(path.join(work, 'squid', file), 'utf8').catch(() => '');
    if (!want || want.test(text) || Date.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-proxy-'));
  srv = await startTestServer();
  archive = await buildTarGz([{ name: 'bin/server', content: '#!/bin/sh\n', mode: 0o755 }, { name: 'lib/blob', content: Buffer.alloc(300_000, 7) }]);
  srv.serve('/rel/core-1.tar.gz', archive);
  srv.serve('/rel/core-1.tar.gz.sha256', `${sha256Hex(archive)}  core-1.tar.gz\n`);
  srv.serve('/manifest.json', '{"hello":"proxy"}');
  if (!SQUID) return;
  // An https origin with a throwaway certificate for 127.0.0.1, trusted by the lander child only.
  const w = (f: string) => path.join(work, f);
  await makeTestCa(work);
  tlsServer = https.createServer({ key: await readFile(path.join(work, 'key.pem')), cert: await readFile(path.join(work, 'cert.pem')) }, (req, res) => {
    const body = req.url === '/tls/core-1.tar.gz' ? archive : req.url === '/tls/core-1.tar.gz.sha256' ? Buffer.from(`${sha256Hex(archive)}  core-1.tar.gz\n`) : undefined;
    if (!body) return void res.writeHead(404).end();
    const viaSquid = [SQUID_ADDRESS, `::ffff:${SQUID_ADDRESS}`].includes(req.socket.remoteAddress ?? '');
    if (!viaSquid) { tunnelled.refused++; return void res.destroy(); }
    res.on('finish', () => { tunnelled.bytes += body.length; });
    res.writeHead(200, { 'content-length': String(body.length) }).end(body);
  });
  tlsServer.on('connection', (sock: net.Socket) => {
    if (sock.remoteAddress !== SQUID_ADDRESS && sock.remoteAddress !== `::ffff:${SQUID_ADDRESS}`) {
      tunnelled.refused++;
      sock.destroy(); // a client that went around the proxy
      return;
    }
  });
  await new Promise<void>((r) => tlsServer!.listen(0, '127.0.0.1', r));
  tlsOrigin = `https://127.0.0.1:${(tlsServer.address() as net.AddressInfo).port}`;

  proxyPort = await freePort();
  tlsProxyPort = await freePort();
  const dir = path.join(work, 'squid');
  await mkdir(dir);
  // squid drops to its own user when started as root: it must reach and write its folder.
  await chmod(work, 0o755);
  await chmod(dir, 0o777);
  for (const f of ['cert.pem', 'key.pem']) await chmod(w(f), 0o644); // squid may read them as its own user
  await writeFile(path.join(dir, 'squid.conf'), [
    `http_port 127.0.0.1:${proxyPort}`,
    // The same squid behind TLS, for https:// proxy URLs; its own log shows what came in on it.
    `https_port 127.0.0.1:${tlsProxyPort} name=tlsport tls-cert=${w('cert.pem')} tls-key=${w('key.pem')}`,
    'acl viaTls myportname tlsport',
    `access_log stdio:${dir}/tls-access.log squid viaTls`,
    'acl loopback src 127.0.0.1/32',
    'http_access allow loopback',
    'http_access deny all',
    'cache deny all',
    `tcp_outgoing_address ${SQUID_ADDRESS}`,
    `access_log stdio:${dir}/access.log`,
    `cache_log ${dir}/cache.log`,
    `pid_filename ${dir}/squid.pid`,
    `coredump_dir ${dir}`,
    'shutdown_lifetime 0 seconds',
    '',
  ].join('\n'));
  squid = spawn(SQUID, ['-N', '-f', path.join(dir, 'squid.conf')], { stdio: 'ignore' });
  await waitForPort(proxyPort, 20_000);
  await waitForPort(tlsProxyPort, 20_000);
}, 60_000);

afterAll(async () => {
  if (squid && squid.exitCode === null) {
    const gone = new Promise((r) => squid!.once('exit', r));
    squid.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    if (squid.exitCode === null) squid.kill('SIGKILL');
  }
  for (const r of registries) await r.stop().catch(() => undefined);
  await new Promise<void>((r) => (tlsServer ? tlsServer.close(() => r()) : r()));
  await srv?.close();
  await rm(work, { recursive: true, force: true });
});

async function install(name: string, origin: string, prefix: string, env: Record<string, string>) {
  const root = path.join(work, name, 'root');
  const configPath = path.join(work, name, 'lander.json');
  await mkdir(path.dirname(configPath), { recursive: true });
  await writeFile(configPath, JSON.stringify({
    root,
    components: { core: { version: '1', url: `${origin}/${prefix}/core-{version}.tar.gz`, sha256Url: '{url}.sha256' } },
    download: { retries: 1, backoffInitial: '10ms', connectTimeout: '5s', idleTimeout: '5s' },
  }));
  const r = await runLander(['install', '--config', configPath], env);
  return { ...r, root };
}

const registries: Registry[] = [];

/** A `lander pack --out`-like folder of one component, pushed to `target` with `env`. */
async function push(name: string, target: string, env: Record<string, string>) {
  const dir = path.join(work, name, 'rel');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'core-1.tar.gz'), archive);
  await writeFile(path.join(dir, 'manifest.json'), landerManifest([{ name: 'core', version: '1', asset: 'core-1.tar.gz', sha256: sha256Hex(archive), size: archive.length }]));
  return runLander(['push', dir, target, '--json'], env);
}

const direct = { HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '', NO_PROXY: '', no_proxy: '' };

// Off the CI machine a developer without squid skips these; CI installs squid, and there they must run.
if (!SQUID && !process.env.CI) console.warn('proxy: the squid tests are skipped: squid is not installed (apt-get install squid)');
describe.skipIf(!SQUID && !process.env.CI)('proxies (squid on loopback)', () => {
  it('HTTP_PROXY: the archive and its sidecar go through squid as absolute-URI requests', async () => {
    const r = await install('http', srv.origin, 'rel', { ...direct, HTTP_PROXY: `http://127.0.0.1:${proxyPort}` });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(r.root, 'current/bin/server'), 'utf8')).toBe('#!/bin/sh\n');
    const log = await accessLog(/GET http:\/\/127\.0\.0\.1:\d+\/rel\/core-1\.tar\.gz /);
    expect(log).toMatch(new RegExp(`GET ${srv.origin.replace(/\./g, '\\.')}/rel/core-1\\.tar\\.gz\\.sha256 `));
    expect(log).toMatch(new RegExp(`GET ${srv.origin.replace(/\./g, '\\.')}/rel/core-1\\.tar\\.gz `));
  });

  it('HTTPS_PROXY: a CONNECT tunnel with TLS to the origin inside it', async () => {
    const before = (await accessLog()).split('\n').filter((l) => l.includes(' CONNECT ')).length;
    const bytesBefore = tunnelled.bytes;
    const ca = path.join(work, 'ca.pem');
    const r = await install('https', tlsOrigin, 'tls', { ...direct, HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`, NODE_EXTRA_CA_CERTS: ca, DENO_CERT: ca });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(r.root, 'current/bin/server'), 'utf8')).toBe('#!/bin/sh\n');
    const hostPort = tlsOrigin.slice('https://'.length);
    const log = await accessLog(new RegExp(`(CONNECT ${hostPort.replace(/\./g, '\\.')}.*\\n.*){2}`));
    // One tunnel for the sidecar, one for the archive; squid sees host:port, never the paths.
    expect(log.split('\n').filter((l) => l.includes(` CONNECT ${hostPort} `)).length - before).toBeGreaterThanOrEqual(2);
    expect(log).not.toContain('/tls/core-1');
    // The archive's bytes (and the sidecar's) went through the tunnel, and nobody came around it.
    expect(tunnelled.refused).toBe(0);
    const deadline = Date.now() + 5000;
    while (tunnelled.bytes - bytesBefore < archive.length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(tunnelled.bytes - bytesBefore).toBeGreaterThanOrEqual(archive.length);
  });

  it('an https:// proxy: TLS to squid, then a CONNECT tunnel with TLS to the origin inside it', async () => {
    const bytesBefore = tunnelled.bytes;
    const ca = path.join(work, 'ca.pem');
    const r = await install('tls-proxy', tlsOrigin, 'tls', { ...direct, HTTPS_PROXY: `https://127.0.0.1:${tlsProxyPort}`, NODE_EXTRA_CA_CERTS: ca, DENO_CERT: ca });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(r.root, 'current/bin/server'), 'utf8')).toBe('#!/bin/sh\n');
    const hostPort = tlsOrigin.slice('https://'.length);
    const log = await accessLog(new RegExp(`CONNECT ${hostPort.replace(/\./g, '\\.')}`), 'tls-access.log');
    expect(log).toContain(`CONNECT ${hostPort} `);
    expect(tunnelled.refused).toBe(0);
    const deadline = Date.now() + 5000;
    while (tunnelled.bytes - bytesBefore < archive.length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(tunnelled.bytes - bytesBefore).toBeGreaterThanOrEqual(archive.length);
  });

  it('an https:// proxy for an http origin: absolute-URI requests over TLS to squid', async () => {
    const ca = path.join(work, 'ca.pem');
    const r = await install('tls-proxy-http', srv.origin, 'rel', { ...direct, HTTP_PROXY: `https://127.0.0.1:${tlsProxyPort}`, NODE_EXTRA_CA_CERTS: ca, DENO_CERT: ca });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(r.root, 'current/bin/server'), 'utf8')).toBe('#!/bin/sh\n');
    const log = await accessLog(new RegExp(`GET ${srv.origin.replace(/\./g, '\\.')}/rel/core-1\\.tar\\.gz `), 'tls-access.log');
    expect(log).toMatch(new RegExp(`TCP_MISS/200 \\d+ GET ${srv.origin.replace(/\./g, '\\.')}/rel/core-1\\.tar\\.gz\\.sha256 `));
  });

  it('NO_PROXY naming the host: direct, squid sees nothing', async () => {
    const lines = (await accessLog()).split('\n').length;
    const r = await install('noproxy', srv.origin, 'rel', { ...direct, HTTP_PROXY: `http://127.0.0.1:${proxyPort}`, NO_PROXY: 'example.org, 127.0.0.1' });
    expect(r.code, r.stderr).toBe(0);
    await new Promise((res) => setTimeout(res, 300));
    expect((await accessLog()).split('\n').length).toBe(lines);
  });

  it('small files (manifests, sidecars) fetched in-process honour the same variables', async () => {
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY };
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxyPort}`;
    process.env.NO_PROXY = '';
    try {
      expect(await fetchText(srv.url('/manifest.json'), { retries: 0 })).toBe('{"hello":"proxy"}');
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(await accessLog(/GET http:\/\/127\.0\.0\.1:\d+\/manifest\.json /)).toMatch(/TCP_MISS\/200 \d+ GET http:\/\/127\.0\.0\.1:\d+\/manifest\.json /);
  });

  it('a proxy that is down: the error names the URL and how it failed', async () => {
    const dead = await freePort();
    const r = await install('down', srv.origin, 'rel', { ...direct, HTTP_PROXY: `http://127.0.0.1:${dead}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${srv.origin}/rel/core-1.tar.gz.sha256`);
    expect(r.stderr).toContain('ECONNREFUSED');
  });

  const noRegistry = registryMissing();
  if (noRegistry && !process.env.CI) console.warn(`proxy: the lander push tests are skipped: ${noRegistry}`);
  it.skipIf(noRegistry !== undefined && !process.env.CI)('lander push with HTTP_PROXY: HEAD, POST, PUT and the manifest through squid', async () => {
    const reg = await startRegistry(path.join(work, 'reg-http'));
    registries.push(reg);
    const r = await push('push-http', `oci+http://${reg.host}/lander`, { ...direct, HTTP_PROXY: `http://127.0.0.1:${proxyPort}` });
    expect(r.code, r.stderr).toBe(0);
    const served = reg.requests().filter((q) => q.path.startsWith('/v2/lander/')); // not the helper's own start-up pings of /v2/
    expect(served.filter((q) => q.method === 'PUT').length).toBe(3); // the config blob, the archive, the manifest
    // Every request came from squid (it connects from 127.0.0.2), none straight from lander.
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((q) => q.peer === SQUID_ADDRESS)).toBe(true);
    expect(await accessLog(new RegExp(`PUT http://${reg.host.replace(/\./g, '\\.')}/v2/lander/core/manifests/1 `))).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/v2\/lander\/core\/blobs\/uploads\//);
  }, 60_000);

  it.skipIf(noRegistry !== undefined && !process.env.CI)('lander push with HTTPS_PROXY: a CONNECT tunnel to a registry on https', async () => {
    const reg = await startRegistry(path.join(work, 'reg-https'), { tls: { certificate: path.join(work, 'cert.pem'), key: path.join(work, 'key.pem') } });
    registries.push(reg);
    const ca = path.join(work, 'ca.pem');
    const r = await push('push-https', `oci://${reg.host}/lander`, { ...direct, HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`, NODE_EXTRA_CA_CERTS: ca, DENO_CERT: ca });
    expect(r.code, r.stderr).toBe(0);
    const served = reg.requests().filter((q) => q.path.startsWith('/v2/lander/')); // not the helper's own start-up pings of /v2/
    expect(served.filter((q) => q.method === 'PUT').length).toBe(3);
    expect(served.every((q) => q.peer === SQUID_ADDRESS)).toBe(true);
    const log = await accessLog(new RegExp(`CONNECT ${reg.host.replace(/\./g, '\\.')} `));
    expect(log).toContain(` CONNECT ${reg.host} `);
    // squid sees host:port in CONNECTs, never a path on this registry.
    expect(log.split('\n').filter((l) => l.includes(reg.host) && !l.includes(' CONNECT '))).toEqual([]);
  }, 60_000);
});
