/**
 * Registry credentials as docker keeps them, against real registries
 * (Debian's docker-registry 2.8) on loopback, plain HTTP:
 * - `auth: htpasswd` (a Basic challenge): `auths.<host>.auth` from
 *   config.json for push and install; a credential helper
 *   (`credHelpers.<host>`, `credsStore`) written by the test onto PATH;
 * - `auth: token` (a Bearer challenge; the registry checks the JWTs a token
 *   service of the test's own signs with a key made by openssl):
 *   `auths.<host>.identitytoken` and a helper answering Username `<token>`,
 *   both traded by an OAuth2 refresh_token POST;
 * - a chunked pack through both: the index blob and the archive's ranges
 *   carry the credentials.
 * No secret appears in what lander prints.
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { landerManifest } from '../../src/pack/outputs.ts';
import { writeTarGz } from '../helpers/archive.ts';
import { freePort } from '../helpers/free-port.ts';
import { runLander, type CliResult } from '../helpers/lander-cli.ts';
import { htpasswdLine, registryMissing, startRegistry, type Registry } from '../helpers/registry.ts';
import { makeSourceTree } from '../helpers/source-tree.ts';

const missing = registryMissing() ?? (spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl (Debian package openssl) is not installed');
if (process.env.CI === 'true' && missing) throw new Error(`CI needs ${missing}`);
if (missing) console.warn(`skipping the registry credential tests: ${missing}`);

const USER = 'alice';
const PASS = 'pw-Zq81-must-not-be-logged';
const ID_TOKEN = 'idtok-Q2w3-must-not-be-logged';
const SECRETS = [PASS, ID_TOKEN, Buffer.from(`${USER}:${PASS}`).toString('base64')];
const ISSUER = 'lander-test-issuer';
const SERVICE = 'lander-test-registry';

let work: string;
let basic: Registry;
let bearer: Registry;
let bin: string;
let helperLog: string;
const cleanups: (() => Promise<unknown>)[] = [];
/** What the token service was asked. */
const tokenAsks: { method: string; grant?: string; authorization?: string; scope?: string }[] = [];

const ok = (r: CliResult) => expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
const noSecrets = (r: CliResult) => { for (const s of SECRETS) expect(`${r.stdout}${r.stderr}`).not.toContain(s); };

async function dockerConfig(name: string, doc: unknown): Promise<string> {
  const dir = path.join(work, `docker-${name}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(doc));
  return dir;
}

async function installFrom(name: string, reg: Registry, env: Record<string, string>, component = { name: 'server', version: '1.0.0' }): Promise<CliResult> {
  const cfg = path.join(work, `${name}.json`);
  await writeFile(cfg, JSON.stringify({ root: path.join(work, name), components: { [component.name]: { version: component.version, url: `oci+http://${reg.host}/lander/${component.name}:{version}` } }, download: { retries: 0 } }));
  return runLander(['install', '--config', cfg], { PATH: `${bin}:${process.env.PATH}`, ...env });
}
const installed = (name: string) => readFile(path.join(work, name, 'current', 'server', 'VERSION'), 'utf8');

/** A JWT the registry accepts: RS256, the signing certificate in `x5c` (the registry's root bundle holds it). */
function accessToken(key: ReturnType<typeof createPrivateKey>, cert: Buffer, scope: string): string {
  const [, name, actions] = scope.split(':');
  const now = Math.floor(Date.now() / 1000);
  const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const input = `${b64({ typ: 'JWT', alg: 'RS256', x5c: [cert.toString('base64')] })}.${b64({ iss: ISSUER, sub: USER, aud: SERVICE, exp: now + 600, nbf: now - 60, iat: now, jti: randomUUID(), access: name ? [{ type: 'repository', name, actions: (actions ?? 'pull').split(',') }] : [] })}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

beforeAll(async () => {
  if (missing) return;
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-oci-creds-'));
  // The release: one small component.
  const rel = path.join(work, 'rel');
  await mkdir(rel);
  const r = await writeTarGz(path.join(rel, 'server-1.0.0.tar.gz'), [{ type: 'directory', name: 'server/' }, { name: 'server/VERSION', content: 'server 1.0.0' }]);
  await writeFile(path.join(rel, 'manifest.json'), landerManifest([{ name: 'server', version: '1.0.0', asset: 'server-1.0.0.tar.gz', sha256: r.sha256, size: r.size }]));

  const htpasswd = path.join(work, 'htpasswd');
  await writeFile(htpasswd, htpasswdLine(USER, PASS));
  basic = await startRegistry(path.join(work, 'basic'), { auth: { htpasswd } });
  cleanups.push(() => basic.stop());

  // The token service: Basic user:password (GET) or a refresh token (POST), as the distribution token spec has it.
  const keyFile = path.join(work, 'token.key');
  const certFile = path.join(work, 'token.crt');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=lander-test-token'], { encoding: 'utf8' });
  expect(gen.status, gen.stderr).toBe(0);
  const key = createPrivateKey(await readFile(keyFile));
  const cert = new X509Certificate(await readFile(certFile)).raw;
  const tokenPort = await freePort();
  const service = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c)).on('end', () => {
      const u = new URL(req.url!, 'http://x');
      const form = new URLSearchParams(Buffer.concat(parts).toString());
      const grant = form.get('grant_type') ?? undefined;
      const scope = (req.method === 'POST' ? form.get('scope') : u.searchParams.get('scope')) ?? '';
      tokenAsks.push({ method: req.method!, ...(grant ? { grant } : {}), ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), scope });
      const good = req.method === 'POST'
        ? grant === 'refresh_token' && form.get('refresh_token') === ID_TOKEN && form.get('service') === SERVICE
        : req.headers.authorization === `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;
      if (!good) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      const token = accessToken(key, cert, scope);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(req.method === 'POST' ? { access_token: token, expires_in: 600 } : { token, access_token: token }));
    });
  });
  await new Promise<void>((ready) => service.listen(tokenPort, '127.0.0.1', ready));
  cleanups.push(() => new Promise((done) => { service.closeAllConnections(); service.close(done); }));
  bearer = await startRegistry(path.join(work, 'bearer'), { auth: { token: { realm: `http://127.0.0.1:${tokenPort}/token`, service: SERVICE, issuer: ISSUER, rootcertbundle: certFile } } });
  cleanups.push(() => bearer.stop());

  // docker-credential-test: answers for the two registries, "credentials not found" for any other.
  bin = path.join(work, 'bin');
  helperLog = path.join(work, 'helper.log');
  await mkdir(bin);
  await writeFile(path.join(bin, 'docker-credential-test'), `#!/bin/sh
read -r server
echo "$1 $server" >> '${helperLog}'
case "$server" in
  ${basic.host}) printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASS}"}' "$server" ;;
  ${bearer.host}) printf '{"ServerURL":"%s","Username":"<token>","Secret":"${ID_TOKEN}"}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`);
  await chmod(path.join(bin, 'docker-credential-test'), 0o755);

  // Both registries hold the release, pushed with user:password from config.json.
  const pushCfg = await dockerConfig('push', { auths: { [basic.host]: { auth: Buffer.from(`${USER}:${PASS}`).toString('base64') }, [`http://${bearer.host}`]: { auth: Buffer.from(`${USER}:${PASS}`).toString('base64') } } });
  // And a chunked pack (archive + index layer) as lander/core:2.0.
  await makeSourceTree(path.join(work, 'src'), { files: 12, libBytes: 96 * 1024 });
  await writeFile(path.join(work, 'rules.json'), JSON.stringify({ default: 'core', components: { core: { asset: 'core-{version}.tar.gz' } }, rules: [{ prefix: '_internal/', component: 'core' }] }));
  ok(await runLander(['pack', path.join(work, 'src'), '--out', path.join(work, 'chunked'), '--rules', path.join(work, 'rules.json'), '--component-version', 'core=2.0']));
  for (const reg of [basic, bearer]) {
    for (const dir of [rel, path.join(work, 'chunked')]) {
      const pushed = await runLander(['push', dir, `oci+http://${reg.host}/lander`, '--docker-config', path.join(pushCfg, 'config.json')]);
      ok(pushed);
      noSecrets(pushed);
    }
  }
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)('registry credentials like docker\'s', () => {
  it('a registry with htpasswd: Basic from auths.<host>.auth; without it, a refusal that says docker login', async () => {
    const withAuth = await installFrom('basic-auth', basic, { DOCKER_CONFIG: await dockerConfig('basic-auth', { auths: { [basic.host]: { auth: Buffer.from(`${USER}:${PASS}`).toString('base64') } } }) });
    ok(withAuth);
    noSecrets(withAuth);
    expect(await installed('basic-auth')).toBe('server 1.0.0');
    // The registry saw the blob fetched with the credentials (200), after the one challenge.
    expect(basic.requests().some((q) => q.method === 'GET' && q.path.includes('/blobs/sha256:') && q.status === 200)).toBe(true);

    const anonymous = await installFrom('basic-none', basic, { DOCKER_CONFIG: path.join(work, 'no-docker-config') });
    expect(anonymous.code).not.toBe(0);
    const failed = anonymous.logs.find((l) => l.event === 'install.failed');
    expect(failed?.err).toMatchObject({ code: 'ERR_REGISTRY_AUTH', message: expect.stringMatching(/docker login/) });
  }, 60_000);

  it('credHelpers.<host> and credsStore: docker-credential-<name> get, the server name on stdin', async () => {
    await rm(helperLog, { force: true });
    const byHost = await installFrom('helper-host', basic, { DOCKER_CONFIG: await dockerConfig('helper-host', { auths: { [basic.host]: {} }, credHelpers: { [basic.host]: 'test' } }) });
    ok(byHost);
    noSecrets(byHost);
    expect(await installed('helper-host')).toBe('server 1.0.0');
    expect((await readFile(helperLog, 'utf8')).trim().split('\n')).toEqual([`get ${basic.host}`]);

    const store = await installFrom('helper-store', basic, { DOCKER_CONFIG: await dockerConfig('helper-store', { credsStore: 'test' }) });
    ok(store);
    expect(await installed('helper-store')).toBe('server 1.0.0');

    // A helper that is not installed: a refusal that names it.
    const nothing = await installFrom('helper-none', basic, { DOCKER_CONFIG: await dockerConfig('helper-none', { credHelpers: { [basic.host]: 'absent-helper' } }) });
    expect(nothing.code).not.toBe(0);
    expect(nothing.logs.find((l) => l.event === 'install.failed')?.err).toMatchObject({ code: 'ERR_REGISTRY_AUTH', message: expect.stringMatching(/docker-credential-absent-helper is not on PATH/) });
  }, 60_000);

  it('a token registry: auths.<host>.identitytoken and a helper\'s <token> answer are traded by a refresh_token POST', async () => {
    // The registry checks what it is sent: a token it did not get from its token service is refused.
    const forged = await new Promise<number>((done, fail) => http.get(`${bearer.url}/v2/lander/server/manifests/1.0.0`, { headers: { authorization: 'Bearer forged.jwt.value' }, agent: false }, (res) => { res.resume(); done(res.statusCode!); }).on('error', fail));
    expect(forged).toBe(401);
    tokenAsks.length = 0;
    const identity = await installFrom('identity', bearer, { DOCKER_CONFIG: await dockerConfig('identity', { auths: { [bearer.host]: { identitytoken: ID_TOKEN } } }) });
    ok(identity);
    noSecrets(identity);
    expect(await installed('identity')).toBe('server 1.0.0');
    expect(tokenAsks.length).toBeGreaterThan(0);
    expect(tokenAsks.every((a) => a.method === 'POST' && a.grant === 'refresh_token' && a.authorization === undefined)).toBe(true);
    expect(tokenAsks.some((a) => a.scope === 'repository:lander/server:pull')).toBe(true);

    tokenAsks.length = 0;
    const helper = await installFrom('identity-helper', bearer, { DOCKER_CONFIG: await dockerConfig('identity-helper', { credsStore: 'test' }) });
    ok(helper);
    noSecrets(helper);
    expect(await installed('identity-helper')).toBe('server 1.0.0');
    expect(tokenAsks.length).toBeGreaterThan(0);
    expect(tokenAsks.every((a) => a.method === 'POST' && a.grant === 'refresh_token')).toBe(true);

    // lander push trades it the same way, for the scope each challenge names (pull,push for an upload).
    tokenAsks.length = 0;
    const pushed = await runLander(['push', path.join(work, 'rel'), `oci+http://${bearer.host}/lander2`, '--json', '--docker-config', path.join(await dockerConfig('identity-push', { auths: { [bearer.host]: { identitytoken: ID_TOKEN } } }), 'config.json')]);
    ok(pushed);
    noSecrets(pushed);
    expect(tokenAsks.every((a) => a.method === 'POST' && a.grant === 'refresh_token')).toBe(true);
    // The registry names the actions in either order (Go map order): compare them as a set.
    const actions = (scope?: string) => scope?.replace(/^(repository:[^:]+:)(.*)$/, (_m, p: string, a: string) => p + a.split(',').sort().join(','));
    expect(tokenAsks.map((a) => actions(a.scope))).toContain('repository:lander2/server:pull,push');
    expect(bearer.requests().filter((q) => q.method === 'PUT' && q.path === '/v2/lander2/server/manifests/1.0.0').map((q) => q.status)).toEqual([201]);

    const wrong = await installFrom('identity-wrong', bearer, { DOCKER_CONFIG: await dockerConfig('identity-wrong', { auths: { [bearer.host]: { identitytoken: 'not-the-token' } } }) });
    expect(wrong.code).not.toBe(0);
    expect(wrong.logs.find((l) => l.event === 'install.failed')?.err).toMatchObject({ code: 'ERR_REGISTRY_AUTH', message: expect.stringMatching(/token service .* answered HTTP 401/) });
    expect(`${wrong.stdout}${wrong.stderr}`).not.toContain('not-the-token');
  }, 60_000);

  it('a chunked pack: the index blob and the archive ranges carry the credentials (Basic, and a token from an identity token)', async () => {
    const core = { name: 'core', version: '2.0' };
    const cases: [string, Registry, unknown][] = [
      ['chunked-basic', basic, { auths: { [basic.host]: { auth: Buffer.from(`${USER}:${PASS}`).toString('base64') } } }],
      ['chunked-identity', bearer, { auths: { [bearer.host]: { identitytoken: ID_TOKEN } } }],
    ];
    for (const [name, reg, doc] of cases) {
      const since = reg.requests().length;
      const r = await installFrom(name, reg, { DOCKER_CONFIG: await dockerConfig(name, doc) }, core);
      ok(r);
      noSecrets(r);
      expect(r.logs.find((l) => l.event === 'install.chunked-plan'), name).toMatchObject({ worker: true });
      // The archive blob came in ranges the registry accepted (206), after no refusal of a range.
      const blobs = reg.requests().slice(since).filter((q) => q.method === 'GET' && q.path.includes('/blobs/sha256:'));
      expect(blobs.some((q) => q.status === 206), name).toBe(true);
      expect(blobs.filter((q) => q.status === 401), name).toEqual([]);
      expect(await readFile(path.join(work, name, 'current', 'voicebox-server-cuda'))).toEqual(await readFile(path.join(work, 'src', 'voicebox-server-cuda')));
    }
  }, 60_000);
});
