/**
 * `lander run` following a signed manifest, end to end: a real daemon
 * process, the loopback HTTP server serving the manifest, its `.minisig` and
 * the archives. A manifest is used only with a valid signature by the
 * configured key, never below the last accepted sequence (also after a
 * restart), never past its expiry; one manifest binds all its components.
 */
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/api-client.ts';
import type { DaemonStatus } from '../../src/report/daemon-model.ts';
import { formatPublicKey, formatSignature, generateKeyPair, keyIdHex, landerTrustedComment, publicKeyLine, signMessage, type MinisignSecretKey } from '../../src/config/minisign.ts';
import type { State } from '../../src/store/state.ts';
import { startDaemon, type DaemonProc } from '../helpers/daemon-proc.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, type PublishedAsset } from '../helpers/release.ts';
import { freePort } from '../helpers/free-port.ts';

let server: TestServer;
let work: string;
const cores: Record<string, PublishedAsset> = {};
let cuda: PublishedAsset;
let cuda2: PublishedAsset;
const daemons: DaemonProc[] = [];
const KEY = generateKeyPair();
const KEY_ID = keyIdHex(KEY.keyId);

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-signed-'));
  for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.5.0-never-healthy']) {
    const dir = path.join(work, `src-core-${v}`);
    await makeCoreTree(dir, v, { smallFiles: 10, ...(v.endsWith('never-healthy') ? { flags: '--never-healthy' } : {}) });
    cores[v] = await publish(server, v, 'voicebox-server-cuda.tar.gz', dir);
  }
  const libs = path.join(work, 'src-cuda');
  await makeCudaTree(libs, { libBytes: 64 * 1024, libs: 2 });
  cuda = await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', libs);
  const libs2 = path.join(work, 'src-cuda2');
  await makeCudaTree(libs2, { libBytes: 64 * 1024, libs: 3 });
  cuda2 = await publish(server, 'libs', 'cuda-libs-cu128-v2.tar.gz', libs2);
});

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop('SIGTERM');
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

type Parts = { server: string; cuda?: true | 'v2' | 'missing' };

/** A lander manifest; `cuda: 'missing'` names an archive the server does not have. */
function manifestText(sequence: number, p: Parts, extra: Record<string, unknown> = {}): string {
  const components: Record<string, unknown> = { server: { version: p.server, url: cores[p.server]!.url, sha256: cores[p.server]!.sha256 } };
  if (p.cuda === 'missing') components['cuda-libs'] = { version: 'cu128-v9', url: server.url('/download/vlibs/cuda-libs-cu128-v9.tar.gz'), sha256: 'e'.repeat(64) };
  else if (p.cuda === 'v2') components['cuda-libs'] = { version: 'cu128-v2', url: cuda2.url, sha256: cuda2.sha256 };
  else if (p.cuda) components['cuda-libs'] = { version: 'cu128-v1', url: cuda.url, sha256: cuda.sha256 };
  return JSON.stringify({ schema: 1, sequence, ...extra, components }, null, 2);
}

function signatureOf(text: string, key: MinisignSecretKey = KEY): string {
  const sequence = (JSON.parse(text) as { sequence?: number }).sequence;
  return formatSignature(signMessage(Buffer.from(text), key, { trustedComment: landerTrustedComment({ timestamp: Date.now(), file: 'stable.json', ...(sequence !== undefined ? { sequence } : {}) }) }));
}

interface Setup {
  root: string;
  url: string;
  /** Serves the manifest and, unless `sig` is null, its signature (by default a valid one). */
  release(text: string, sig?: string | null): void;
  start(): DaemonProc;
  status(): Promise<DaemonStatus>;
  state(): Promise<State>;
}


async function setup(name: string, opts: { keyAsFile?: boolean; server?: boolean } = {}): Promise<Setup> {
  const dir = path.join(work, name);
  const root = path.join(dir, 'root');
  await mkdir(root, { recursive: true });
  const urlPath = `/${name}/stable.json`;
  let publicKey = publicKeyLine(KEY);
  if (opts.keyAsFile) {
    publicKey = path.join(dir, 'lander.pub');
    await writeFile(publicKey, formatPublicKey(KEY));
  }
  const configPath = path.join(dir, 'lander.json');
  const config = {
    root,
    // Everything comes from the manifest; the config names the server only because it must name one component.
    components: { server: {} },
    manifest: { url: server.url(urlPath), interval: '300ms', jitter: 0, publicKey },
    download: { retries: 0, backoffInitial: '10ms', connectTimeout: '2s', idleTimeout: '2s' },
    ...(opts.server ? { server: await serverConfig() } : {}),
  };
  await writeFile(`${configPath}.tmp`, JSON.stringify(config, null, 2));
  await rename(`${configPath}.tmp`, configPath);
  return {
    root,
    url: server.url(urlPath),
    release(text, sig) {
      server.serve(urlPath, text);
      // Each test has its own path, so "unsigned" is a signature never served (404).
      if (sig !== null) server.serve(`${urlPath}.minisig`, sig ?? signatureOf(text));
    },
    start() {
      const d = startDaemon(configPath);
      daemons.push(d);
      return d;
    },
    status: () => new ApiClient({ socketPath: path.join(root, 'lander.sock'), root, configPath }).getJson<DaemonStatus>('/status'),
    state: async () => JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8').catch(() => '{}')) as State,
  };
}

async function serverConfig(): Promise<Record<string, unknown>> {
  const port = await freePort();
  return {
    command: './voicebox-server-cuda',
    args: ['--port', String(port)],
    health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '2s' },
    stop: { timeout: '3s' },
  };
}

const requestsOf = (v: string) => server.stats(cores[v]!.urlPath).requests;
const manifestError = (code: string) => (r: { event?: string; code?: unknown }) => r.event === 'manifest.error' && r.code === code;

describe('signed manifests', () => {
  it('installs a validly signed manifest; a new one replaces all its components, and a half-installable one lands nothing', async () => {
    const t = await setup('valid');
    t.release(manifestText(1, { server: '1.0.0', cuda: true }));
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    let s = await t.status();
    expect(s.components.server!.installed).toBe('1.0.0');
    expect(s.components['cuda-libs']!.installed).toBe('cu128-v1');
    expect(s.manifest).toMatchObject({ url: t.url, sequence: 1, signedBy: KEY_ID });
    expect(s.manifest!.error).toBeUndefined();
    expect((await t.state()).signedManifests[t.url]).toMatchObject({ sequence: 1, keyId: KEY_ID });

    // Manifest 2 lists the server only: cuda-libs goes with manifest 1, it is not kept from it.
    let mark = d.logs().length;
    t.release(manifestText(2, { server: '1.1.0' }));
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark });
    s = await t.status();
    expect(s.generations.find((g) => g.id === 2)!.components).toEqual({ server: '1.1.0' });
    expect(s.current).toBe(2);

    // Manifest 3's cuda-libs cannot be fetched: its server is not combined with anything else; nothing lands.
    mark = d.logs().length;
    t.release(manifestText(3, { server: '1.2.0', cuda: 'missing' }));
    await d.waitFor((r) => r.event === 'reconcile.incomplete', { since: mark });
    s = await t.status();
    expect(s.current).toBe(2);
    expect(s.generations.map((g) => g.components)).not.toContainEqual(expect.objectContaining({ server: '1.2.0' }));
    expect(d.logs().slice(mark).some((r) => r.event === 'generation.landed')).toBe(false);
  });

  it('refuses an unsigned manifest and one signed by another key: nothing installed, the error in logs and /status', async () => {
    const t = await setup('unsigned');
    const text = manifestText(1, { server: '1.0.0', cuda: true });
    const before = requestsOf('1.0.0');
    t.release(text, null);
    const d = t.start();
    const err = await d.waitFor(manifestError('ERR_HTTP_STATUS'));
    expect(err.msg).toMatch(/keeping the last good manifest/);
    expect((err.err as { message: string }).message).toMatch(/stable\.json\.minisig could not be fetched \(HTTP 404\); manifest\.publicKey is set, so every manifest must be signed/);
    await d.waitFor((r) => r.event === 'reconcile.waiting');
    let s = await t.status();
    expect(s.manifest!.error).toMatch(/must be signed/);
    expect(s.current).toBeNull();
    expect(s.components.server?.installed).toBeUndefined();

    t.release(text, signatureOf(text, generateKeyPair()));
    await d.waitFor(manifestError('ERR_SIGNATURE'));
    s = await t.status();
    expect(s.manifest!.error).toMatch(/bad signature: it was made with key ID [0-9A-F]{16}, but the public key is /);
    expect(s.current).toBeNull();
    expect((await t.state()).entries ?? []).toEqual([]);
    expect(requestsOf('1.0.0')).toBe(before);

    // Signed properly, the same manifest installs.
    t.release(text);
    await d.waitFor((r) => r.event === 'generation.landed');
    expect((await t.status()).components.server!.installed).toBe('1.0.0');
  });

  it('refuses a lower sequence, also after a restart (state.json remembers the last accepted one)', async () => {
    const t = await setup('rollback');
    t.release(manifestText(5, { server: '1.1.0', cuda: true }));
    const d1 = t.start();
    await d1.waitFor((r) => r.event === 'generation.landed');
    await d1.stop('SIGTERM');
    expect((await t.state()).signedManifests[t.url]!.sequence).toBe(5);

    // An old, validly signed release (a stale mirror, or an attacker replaying it).
    const before = requestsOf('1.0.0');
    t.release(manifestText(4, { server: '1.0.0', cuda: true }));
    const d2 = t.start();
    const err = await d2.waitFor(manifestError('ERR_MANIFEST'));
    expect((err.err as { message: string }).message).toMatch(/sequence went back from 5 to 4/);
    await d2.waitFor(manifestError('ERR_MANIFEST'), { since: d2.logs().indexOf(err) + 1 });
    const s = await t.status();
    expect(s.components.server!.installed).toBe('1.1.0');
    expect(s.manifest!.error).toMatch(/went back from 5 to 4/);
    expect(s.generations).toHaveLength(1);
    expect(requestsOf('1.0.0')).toBe(before);
    expect(d2.logs().some((r) => r.event === 'generation.landed')).toBe(false);

    const mark = d2.logs().length;
    t.release(manifestText(6, { server: '1.2.0', cuda: true }));
    await d2.waitFor((r) => r.event === 'generation.landed', { since: mark });
    expect((await t.status()).components.server!.installed).toBe('1.2.0');
    expect((await t.state()).signedManifests[t.url]!.sequence).toBe(6);
  });

  it('refuses an expired signed manifest', async () => {
    const t = await setup('expired');
    t.release(manifestText(1, { server: '1.0.0', cuda: true }, { expires: '2020-01-01T00:00:00Z' }));
    const d = t.start();
    const err = await d.waitFor(manifestError('ERR_MANIFEST'));
    expect((err.err as { message: string }).message).toMatch(/expired at 2020-01-01T00:00:00Z/);
    await d.waitFor((r) => r.event === 'reconcile.waiting');
    const s = await t.status();
    expect(s.current).toBeNull();
    expect(s.manifest!.error).toMatch(/expired/);
  });

  it('refuses a new manifest served with the previous manifest\'s signature (public key from a .pub file)', async () => {
    const t = await setup('stale-sig', { keyAsFile: true });
    const first = manifestText(1, { server: '1.0.0', cuda: true });
    t.release(first);
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    const before = requestsOf('1.1.0');
    const mark = d.logs().length;
    t.release(manifestText(2, { server: '1.1.0', cuda: true }), signatureOf(first));
    await d.waitFor(manifestError('ERR_SIGNATURE'), { since: mark });
    const s = await t.status();
    expect(s.manifest!.error).toMatch(/bad signature: it does not match the file/);
    expect(s.components.server!.installed).toBe('1.0.0');
    expect(requestsOf('1.1.0')).toBe(before);

    t.release(manifestText(2, { server: '1.1.0', cuda: true }));
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark });
    expect((await t.status()).manifest).toMatchObject({ sequence: 2, signedBy: KEY_ID });
  });

  it('never lands a component of one manifest with one kept from another after a rollback', async () => {
    const t = await setup('bad-version', { server: true });
    t.release(manifestText(1, { server: '1.0.0', cuda: true }));
    const d = t.start();
    await d.waitFor((r) => r.event === 'generation.landed');
    // Manifest 2's server never gets healthy: rolled back to generation 1, its version marked bad.
    let mark = d.logs().length;
    t.release(manifestText(2, { server: '1.5.0-never-healthy', cuda: true }));
    await d.waitFor((r) => r.event === 'rollback', { since: mark });
    await expect.poll(async () => (await t.status()).server.state, { timeout: 10_000 }).toBe('healthy');
    // Manifest 3 keeps that server and brings new cuda-libs: landing cuda-libs 3 beside server 1.0.0 of manifest 1
    // would be a set no manifest ever named. Nothing lands; the server stays on generation 1.
    mark = d.logs().length;
    t.release(manifestText(3, { server: '1.5.0-never-healthy', cuda: 'v2' }));
    const failed = await d.waitFor((r) => r.event === 'reconcile.incomplete', { since: mark });
    expect(failed.errors).toContain('ERR_BAD_VERSION');
    const s = await t.status();
    expect(s.current).toBe(1);
    expect(s.generations.map((g) => g.components)).not.toContainEqual({ server: '1.0.0', 'cuda-libs': 'cu128-v2' });
    expect(d.logs().slice(mark).some((r) => r.event === 'generation.landed')).toBe(false);
  });
});
