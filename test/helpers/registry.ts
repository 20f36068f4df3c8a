/**
 * A real OCI registry on loopback: Debian's `docker-registry` (distribution
 * 2.8), started by the test with its own storage folder, optionally as a
 * pull-through cache of another (`proxy.remoteurl`; start the origin first:
 * a cache exits when its origin does not answer at start-up). Its access log
 * (stderr) is kept, so tests count what the registry served.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { freePort } from './free-port.ts';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

/** Why the registry tests cannot run here, or undefined. */
export function registryMissing(): string | undefined {
  if (!existsSync(REGISTRY_BIN)) return `${REGISTRY_BIN} (Debian package docker-registry) is not installed`;
  return undefined;
}

export interface Registry {
  /** `127.0.0.1:PORT`. */
  host: string;
  url: string;
  /** Access-log lines so far (the peer address when the line has it, method, path, status, body bytes sent). */
  requests(): { peer?: string; method: string; path: string; status: number; bytes: number }[];
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** A pull-through cache of this registry URL. */
  proxyOf?: string;
  /** `auth:` of the config: `htpasswd` (Basic; bcrypt entries, see `htpasswdLine`) or `token` (bearer JWTs from a token service). */
  auth?: { htpasswd: string } | { token: { realm: string; service: string; issuer: string; rootcertbundle: string } };
  /** Serve https with this certificate and key (PEM files); `url` is then https://. */
  tls?: { certificate: string; key: string };
}

/** One htpasswd line with a bcrypt hash (libxcrypt's `$2b$` through perl's crypt(): no apache2-utils needed). */
export function htpasswdLine(user: string, password: string): string {
  const salt = Array.from({ length: 22 }, (_, i) => './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[(i * 7 + user.length) % 64]).join('');
  const r = spawnSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2b$05$${salt}`], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.startsWith('$2b$')) throw new Error(`perl crypt() gave no bcrypt hash: ${r.stdout}${r.stderr}`);
  return `${user}:${r.stdout}\n`;
}

export async function startRegistry(dir: string, opts: RegistryOptions = {}): Promise<Registry> {
  await mkdir(path.join(dir, 'storage'), { recursive: true });
  const port = await freePort();
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'storage')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: lander-test-secret-${port}`,
    ...(opts.tls ? ['  tls:', `    certificate: ${opts.tls.certificate}`, `    key: ${opts.tls.key}`] : []),
    ...(opts.proxyOf ? ['proxy:', `  remoteurl: ${opts.proxyOf}`] : []),
    ...(opts.auth && 'htpasswd' in opts.auth ? ['auth:', '  htpasswd:', '    realm: lander-test', `    path: ${opts.auth.htpasswd}`] : []),
    ...(opts.auth && 'token' in opts.auth ? ['auth:', '  token:', ...Object.entries(opts.auth.token).map(([k, v]) => `    ${k}: ${v}`)] : []),
    '',
  ].join('\n');
  const file = path.join(dir, 'config.yml');
  await writeFile(file, config);
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c: Buffer) => { log += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { log += c.toString(); });
  let exited = false;
  child.once('exit', () => { exited = true; });
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`docker-registry exited at start-up:\n${log}`);
    if (await ping(`${url}/v2/`, opts.auth !== undefined)) break;
    if (i >= 200) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not answer on ${url} after 200 tries:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    requests: () => [...log.matchAll(/(?:^(\S+) - \S+ \[[^\]]*\] )?"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/gm)].map((m) => ({ ...(m[1] ? { peer: m[1] } : {}), method: m[2]!, path: m[3]!, status: Number(m[4]), bytes: Number(m[5]) || 0 })),
    stop: async () => {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

function ping(url: string, authed: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    // The ping only asks whether it is up: a test's own certificate need not be trusted by the test process.
    const req = (url.startsWith('https:') ? https : http).get(url, { agent: false, timeout: 1000, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || (authed && res.statusCode === 401));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
}

/** nginx from Debian's nginx-light, with its http proxy module (checked by `nginx -V`). */
export function nginxMissing(): string | undefined {
  if (!existsSync('/usr/sbin/nginx')) return '/usr/sbin/nginx (Debian package nginx-light) is not installed';
  const v = spawnSync('/usr/sbin/nginx', ['-V'], { encoding: 'utf8' });
  if (`${v.stdout}${v.stderr}`.includes('--without-http_proxy_module')) return 'nginx was built without the proxy module';
  return undefined;
}
