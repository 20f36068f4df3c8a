/**
 * `lander install` end to end: the real CLI in a child process, a real HTTP
 * server on 127.0.0.1 serving archives built here in voicebox's layout.
 */
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, publishCudaLibsJson, releaseConfig, snapshotTree, type PublishedAsset } from '../helpers/release.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { sha256Hex } from '../helpers/archive.ts';

let server: TestServer;
let work: string;
let core1: PublishedAsset;
let core2: PublishedAsset;
let cuda: PublishedAsset;
const src = { core1: '', core2: '', cuda: '' };

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-install-'));
  src.core1 = path.join(work, 'src-core-0.3.1');
  src.core2 = path.join(work, 'src-core-0.3.2');
  src.cuda = path.join(work, 'src-cuda');
  await makeCoreTree(src.core1, '0.3.1');
  await makeCoreTree(src.core2, '0.3.2');
  await makeCudaTree(src.cuda, { libBytes: 2 * 1024 * 1024, libs: 3 });
  core1 = await publish(server, '0.3.1', 'voicebox-server-cuda.tar.gz', src.core1);
  core2 = await publish(server, '0.3.2', 'voicebox-server-cuda.tar.gz', src.core2);
  cuda = await publish(server, '0.3.1', 'cuda-libs-cu128-v1.tar.gz', src.cuda);
  publishCudaLibsJson(server, '0.3.1', 'cu128-v1', cuda);
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

async function setup(name: string, v: { server: string; cuda: string; appTag?: string }, extra: Record<string, unknown> = {}) {
  const root = path.join(work, name, 'root');
  const configPath = path.join(work, name, 'lander.json');
  await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(configPath), { recursive: true }));
  const write = (vv: typeof v, ex = extra) => writeFile(configPath, JSON.stringify(releaseConfig(server, root, { appTag: '0.3.1', ...vv }, ex), null, 2));
  await write(v);
  return { root, configPath, write };
}

/** The root's state, to prove a failed install changed nothing. */
async function rootSnapshot(root: string) {
  return {
    current: await readlink(path.join(root, 'current')).catch(() => null),
    state: await readFile(path.join(root, 'state.json'), 'utf8').catch(() => null),
    store: await snapshotTree(path.join(root, 'store')).catch(() => ({})),
    generations: (await readdir(path.join(root, 'generations')).catch(() => [])).sort(),
    staging: await readdir(path.join(root, 'staging')).catch(() => []),
  };
}

describe('lander install', () => {
  it('installs both components; the tree under current equals the source folders', async () => {
    const { root, configPath } = await setup('first', { server: '0.3.1', cuda: 'cu128-v1' });
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(0);
    // The streams: the logs (JSON off a terminal) on stderr only, the result table on stdout only.
    expect(r.stderr.split('\n').filter(Boolean).every((l) => l.startsWith('{"level":'))).toBe(true);
    expect(r.stdout).not.toContain('{');
    expect(r.stdout).toMatch(/^server +0\.3\.1 +installed \(.* downloaded in [\d.]+ s\)$/m);
    expect(r.stdout).toMatch(/^current -> generation 1$/m);
    const expected = { ...(await snapshotTree(src.core1)), ...(await snapshotTree(src.cuda)) };
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(expected);
    expect(await readlink(path.join(root, 'current'))).toBe('generations/1');
    const verified = r.logs.filter((l) => l.event === 'install.verified');
    expect(verified.map((l) => l.component).sort()).toEqual(['cuda-libs', 'server']);
    expect(verified.find((l) => l.component === 'server')).toMatchObject({ sha256: core1.sha256, bytes: core1.size });
    // A one-shot command keeps no spare worker: each install starts its own.
    expect(verified.map((l) => l.spareWorker)).toEqual([false, false]);
    expect(await readdir(path.join(root, 'staging'))).toEqual([]);
    expect(await readdir(path.join(root, 'downloads'))).toEqual([]);

    // Run again: nothing fetched, not even the sidecars.
    const before = server.stats(core1.urlPath).requests + server.stats(`${core1.urlPath}.sha256`).requests;
    const again = await runLander(['install', '--config', configPath]);
    expect(again.code).toBe(0);
    expect(server.stats(core1.urlPath).requests + server.stats(`${core1.urlPath}.sha256`).requests).toBe(before);
    expect(again.logs.find((l) => l.event === 'install.done')).toMatchObject({ switched: false, generation: 1 });
  });

  it('a core-only bump downloads no cuda-libs bytes and links the same inodes', async () => {
    const { root, configPath, write } = await setup('bump', { server: '0.3.1', cuda: 'cu128-v1' });
    expect((await runLander(['install', '--config', configPath])).code).toBe(0);
    const cudaSent = server.stats(cuda.urlPath).bytesSent;
    const lib = '_internal/nvidia/cublas/lib/libcublas1.so.12';
    const inodeBefore = (await stat(path.join(root, 'current', lib))).ino;

    await write({ server: '0.3.2', cuda: 'cu128-v1' });
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(0);
    expect(server.stats(cuda.urlPath).bytesSent).toBe(cudaSent);
    expect(r.logs.filter((l) => l.event === 'install.verified').map((l) => l.component)).toEqual(['server']);
    expect(await readlink(path.join(root, 'current'))).toBe('generations/2');
    expect((await stat(path.join(root, 'current', lib))).ino).toBe(inodeBefore);
    expect(await readFile(path.join(root, 'current/_internal/VERSION'), 'utf8')).toBe('0.3.2\n');
    // The previous generation stays for rollback, untouched.
    expect(await readFile(path.join(root, 'generations/1/_internal/VERSION'), 'utf8')).toBe('0.3.1\n');
    expect(await snapshotTree(path.join(root, 'current'))).toEqual({ ...(await snapshotTree(src.core2)), ...(await snapshotTree(src.cuda)) });
  });

  it('resumes a download cut at half: the bytes sent add up to the archive once', async () => {
    const { root, configPath } = await setup('resume', { server: '0.3.1', cuda: 'cu128-v1' });
    const cudaPath = cuda.urlPath;
    const sentBefore = server.stats(cudaPath).bytesSent;
    // Cut at half, then refuse the resume attempt, so this run fails with a partial download on disk.
    server.misbehave(cudaPath, { cutAfter: Math.floor(cuda.size / 2) });
    server.misbehave(cudaPath, { status: 503 });
    const first = await runLander(['install', '--config', configPath]);
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/cuda-libs/);
    // The server core landed in the store, but no generation: cuda-libs is missing.
    expect(await readlink(path.join(root, 'current')).catch((e) => e.code)).toBe('ENOENT');
    const part = path.join(root, 'downloads', `${cuda.sha256}.part`);
    const partSize = (await stat(part)).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThanOrEqual(Math.floor(cuda.size / 2));

    const second = await runLander(['install', '--config', configPath]);
    expect(second.code).toBe(0);
    const resume = second.logs.find((l) => l.event === 'download.resume');
    expect(resume).toMatchObject({ component: 'cuda-libs' });
    expect(server.stats(cudaPath).ranges.at(-1)).toBe(`bytes=${partSize}-`);
    const sent = server.stats(cudaPath).bytesSent - sentBefore;
    expect(sent).toBeGreaterThanOrEqual(cuda.size);
    expect(sent).toBeLessThanOrEqual(cuda.size + 1024 * 1024);
    expect(second.logs.find((l) => l.event === 'install.verified' && l.component === 'cuda-libs')).toMatchObject({ reusedBytes: partSize, downloadedBytes: cuda.size - partSize });
    expect(await snapshotTree(path.join(root, 'current'))).toEqual({ ...(await snapshotTree(src.core1)), ...(await snapshotTree(src.cuda)) });
  });

  it('restarts cleanly from zero when the server ignores Range', async () => {
    const { root, configPath } = await setup('norange', { server: '0.3.1', cuda: 'cu128-v1' });
    server.misbehave(cuda.urlPath, { cutAfter: Math.floor(cuda.size / 3) });
    server.misbehave(cuda.urlPath, { status: 503 });
    expect((await runLander(['install', '--config', configPath])).code).toBe(1);
    server.misbehave(cuda.urlPath, { ignoreRange: true });
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(0);
    expect(r.logs.some((l) => l.event === 'download.restart')).toBe(true);
    expect(r.logs.find((l) => l.event === 'install.verified' && l.component === 'cuda-libs')).toMatchObject({ downloadedBytes: cuda.size, sha256: cuda.sha256 });
    expect(await snapshotTree(path.join(root, 'current'))).toEqual({ ...(await snapshotTree(src.core1)), ...(await snapshotTree(src.cuda)) });
  });

  it('a digest mismatch leaves current and the store as they were', async () => {
    const { root, configPath, write } = await setup('mismatch', { server: '0.3.1', cuda: 'cu128-v1' });
    expect((await runLander(['install', '--config', configPath])).code).toBe(0);
    const before = await rootSnapshot(root);
    // 0.3.3's sidecar names a digest that the archive served does not have.
    const wrong = sha256Hex('not this archive');
    server.serve('/download/v0.3.3/voicebox-server-cuda.tar.gz', core2.body);
    server.serve('/download/v0.3.3/voicebox-server-cuda.tar.gz.sha256', `${wrong}  voicebox-server-cuda.tar.gz\n`);
    await write({ server: '0.3.3', cuda: 'cu128-v1' });
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(wrong);
    expect(r.stderr).toContain(core2.sha256);
    const failed = r.logs.find((l) => l.event === 'install.failed');
    expect(failed).toMatchObject({ component: 'server', version: '0.3.3' });
    expect((failed!.err as { code: string }).code).toBe('ERR_DIGEST_MISMATCH');
    expect(await rootSnapshot(root)).toEqual(before);
    expect(await readdir(path.join(root, 'downloads'))).toEqual([]);
  });

  it('a missing sidecar installs nothing and leaves everything as it was', async () => {
    const { root, configPath, write } = await setup('nosidecar', { server: '0.3.1', cuda: 'cu128-v1' });
    expect((await runLander(['install', '--config', configPath])).code).toBe(0);
    const before = await rootSnapshot(root);
    server.serve('/download/v0.3.4/voicebox-server-cuda.tar.gz', core2.body);
    await write({ server: '0.3.4', cuda: 'cu128-v1' });
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Cannot verify server 0\.3\.4: its SHA-256 sidecar .*\.sha256 could not be fetched/);
    expect(server.stats('/download/v0.3.4/voicebox-server-cuda.tar.gz').requests).toBe(0);
    expect(await rootSnapshot(root)).toEqual(before);
  });

  it('reports an invalid config by field path and exits 2', async () => {
    const { configPath } = await setup('badconfig', { server: '0.3.1', cuda: 'cu128-v1' });
    const cfg = JSON.parse(await readFile(configPath, 'utf8'));
    cfg.components.server.sha256Url = 'ftp://nowhere/x';
    cfg.keepGenerations = 0;
    await writeFile(configPath, JSON.stringify(cfg));
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/components\.server\.sha256Url: Expected a URL with scheme http, https or file/);
    expect(r.stderr).toMatch(/keepGenerations/);
  });
});
