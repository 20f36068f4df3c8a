/**
 * One reconcile path (issue 12): `lander install` reads the configured
 * manifest once and installs what it lists, exactly as `lander run` would;
 * a config may leave every component to the manifest; and the store knows an
 * archive by (component, digest), so an identical archive republished under
 * a new version costs no download and shows the new version.
 */
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, publishCudaLibsJson, snapshotTree, type PublishedAsset } from '../helpers/release.ts';
import { complaints, runLander } from '../helpers/lander-cli.ts';

let server: TestServer;
let work: string;
let core: PublishedAsset;
let cuda: PublishedAsset;
const src = { core: '', cuda: '' };
const download = { retries: 0, backoffInitial: '10ms', connectTimeout: '2s', idleTimeout: '2s' };

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-reconcile-'));
  src.core = path.join(work, 'src-core');
  src.cuda = path.join(work, 'src-cuda');
  await makeCoreTree(src.core, '0.3.1', { smallFiles: 20 });
  await makeCudaTree(src.cuda, { libBytes: 256 * 1024, libs: 2 });
  core = await publish(server, '0.3.1', 'voicebox-server-cuda.tar.gz', src.core);
  cuda = await publish(server, '0.3.1', 'cuda-libs-cu128-v1.tar.gz', src.cuda);
  publishCudaLibsJson(server, '0.3.1', 'cu128-v1', cuda);
  // The same core bytes again under a new tag, as a re-tagged release would be.
  server.serve('/download/v0.3.2/voicebox-server-cuda.tar.gz', core.body);
  server.serve('/download/v0.3.2/voicebox-server-cuda.tar.gz.sha256', `${core.sha256}  voicebox-server-cuda.tar.gz\n`);
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

async function writeConfig(name: string, config: Record<string, unknown>): Promise<{ root: string; configPath: string }> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const configPath = path.join(dir, 'lander.json');
  await writeFile(configPath, JSON.stringify({ root, download, ...config }, null, 2));
  return { root, configPath };
}

const both = async () => ({ ...(await snapshotTree(src.core)), ...(await snapshotTree(src.cuda)) });
const requests = (p: string) => server.stats(p).requests;

describe('lander install with a manifest', () => {
  it('a lander manifest and a config with no components: one manifest request, the whole tree', async () => {
    server.serve('/m/lander.json', JSON.stringify({
      schema: 1,
      components: {
        server: { version: '0.3.1', url: core.url, sha256: core.sha256 },
        'cuda-libs': { version: 'cu128-v1', url: cuda.url, sha256: cuda.sha256, restart: true },
      },
    }));
    const { root, configPath } = await writeConfig('lander-manifest', { manifest: { url: server.url('/m/lander.json'), format: 'lander' } });
    const r = await runLander(['install', '--config', configPath]);
    expect(complaints(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(requests('/m/lander.json')).toBe(1);
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(await both());
    expect(r.logs.find((l) => l.event === 'install.done')).toMatchObject({ switched: true, components: { server: '0.3.1', 'cuda-libs': 'cu128-v1' } });
  });

  it("voicebox's cuda-libs.json as the manifest, cuda-libs left out of components: _internal/nvidia is installed", async () => {
    const { root, configPath } = await writeConfig('cuda-libs-json', {
      components: { server: { version: '0.3.1', url: core.url, sha256Url: '{url}.sha256' } },
      manifest: { url: server.url('/download/v0.3.1/cuda-libs.json'), format: 'cuda-libs', component: 'cuda-libs' },
    });
    const before = requests('/download/v0.3.1/cuda-libs.json');
    const r = await runLander(['install', '--config', configPath]);
    expect(complaints(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(requests('/download/v0.3.1/cuda-libs.json')).toBe(before + 1);
    const tree = await snapshotTree(path.join(root, 'current'));
    expect(tree['_internal/nvidia']).toEqual({ type: 'directory' });
    expect(tree).toEqual(await both());
  });

  it('an unreachable manifest fails the install, names the manifest, and lands nothing', async () => {
    const { root, configPath } = await writeConfig('no-manifest', { manifest: { url: server.url('/m/missing.json'), format: 'lander' } });
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(1);
    const said = r.logs.find((l) => l.event === 'install.incomplete');
    expect(said?.msg).toMatch(/^Cannot install: no valid manifest from .*\/m\/missing\.json: /);
    expect(await readlink(path.join(root, 'current')).catch(() => null)).toBeNull();
  });

  it('without a manifest, a config with no components is refused by path', async () => {
    const { configPath } = await writeConfig('empty', {});
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/components: Expected at least one component/);
  });
});

describe('store identity is (component, digest)', () => {
  it('an identical archive under a new version costs no archive download, lands under the new version, and is not re-checked', async () => {
    const config = (v: string) => ({ components: { server: { version: v, url: `${server.origin}/download/v{version}/voicebox-server-cuda.tar.gz`, sha256Url: '{url}.sha256' } } });
    const { root, configPath } = await writeConfig('retag', config('0.3.1'));
    expect((await runLander(['install', '--config', configPath])).code).toBe(0);

    const newArchive = '/download/v0.3.2/voicebox-server-cuda.tar.gz';
    await writeFile(configPath, JSON.stringify({ root, download, ...config('0.3.2') }, null, 2));
    const r = await runLander(['install', '--config', configPath]);
    expect(r.code).toBe(0);
    expect(requests(newArchive)).toBe(0);
    expect(requests(`${newArchive}.sha256`)).toBe(1);
    expect(r.logs.find((l) => l.event === 'install.reused')).toMatchObject({ component: 'server', version: '0.3.2', storedAs: '0.3.1' });
    expect(r.logs.find((l) => l.event === 'install.done')).toMatchObject({ switched: true, components: { server: '0.3.2' } });
    const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
    const current = state.generations.find((g: { id: number }) => g.id === state.current);
    expect(current.components.server).toMatchObject({ version: '0.3.2', sha256: core.sha256 });
    // One store entry serves both versions.
    expect(state.entries.filter((e: { component: string }) => e.component === 'server')).toHaveLength(1);
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(await snapshotTree(src.core));

    const offline = await runLander(['status', '--json', '--config', configPath]);
    expect(JSON.parse(offline.stdout).components.server).toMatchObject({ installed: '0.3.2' });

    // The next reconcile knows the digest of 0.3.2 without fetching its sidecar again.
    const again = await runLander(['install', '--config', configPath]);
    expect(again.code).toBe(0);
    expect(requests(`${newArchive}.sha256`)).toBe(1);
    expect(again.logs.find((l) => l.event === 'install.result')).toMatchObject({ component: 'server', version: '0.3.2', status: 'kept' });
    expect(again.logs.find((l) => l.event === 'install.done')).toMatchObject({ switched: false });
  });
});
