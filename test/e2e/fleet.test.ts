/**
 * Staged rollout and GPU-aware targeting in the running daemon: the machine
 * id comes from the config, the NVIDIA driver version from a stand-in for
 * /proc/driver/nvidia/version (LANDER_NVIDIA_VERSION_FILE). A machine outside
 * a 25% rollout keeps its version and `lander status` says why; a machine id
 * inside takes it; driver 575 gets the cu128 libs, 535 a refusal naming what
 * each variant needs.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolloutBucket } from '../../src/plan/rollout.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { startDaemon, type DaemonProc } from '../helpers/daemon-proc.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { runLander } from '../helpers/lander-cli.ts';

let work: string;
let server: TestServer;
const daemons: DaemonProc[] = [];
const assets: Record<string, { url: string; sha256: string }> = {};
const MANIFEST = '/rel/stable.json';

async function asset(name: string, version: string): Promise<void> {
  const body = await buildTarGz([{ name: `${name}/VERSION`, content: `${name} ${version}` }]);
  const p = `/rel/${name}-${version}.tar.gz`;
  server.serve(p, body);
  assets[`${name}:${version}`] = { url: server.url(p), sha256: sha256Hex(body) };
}

function manifest(serverVersion: string, rollout?: number): string {
  const a = (k: string) => ({ url: assets[k]!.url, sha256: assets[k]!.sha256 });
  return JSON.stringify({
    schema: 1,
    components: {
      server: { version: serverVersion, ...a(`server:${serverVersion}`), ...(rollout !== undefined ? { rollout: { percent: rollout } } : {}) },
      'cuda-libs': {
        variants: [
          { name: 'cu128', requires: { nvidiaDriver: '>=570.26' }, version: 'cu128-v1', ...a('cuda-libs:cu128-v1') },
          { name: 'cu126', requires: { nvidiaDriver: '>=560' }, version: 'cu126-v1', ...a('cuda-libs:cu126-v1') },
        ],
      },
    },
  });
}

async function machine(name: string, driver: string, machineId: string): Promise<{ cfg: string; d: DaemonProc }> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  const versionFile = path.join(dir, 'nvidia-version');
  await writeFile(versionFile, `NVRM version: NVIDIA UNIX x86_64 Kernel Module  ${driver}  Wed May 28 10:49:30 UTC 2025\n`);
  const cfg = path.join(dir, 'lander.json');
  await writeFile(cfg, JSON.stringify({ root: path.join(dir, 'root'), machineId, components: { server: {} }, manifest: { url: server.url(MANIFEST), interval: '200ms', jitter: 0 } }));
  const d = startDaemon(cfg, { LANDER_NVIDIA_VERSION_FILE: versionFile });
  daemons.push(d);
  return { cfg, d };
}

const status = async (cfg: string) => JSON.parse((await runLander(['status', '--json', '--config', cfg])).stdout) as { components: Record<string, { desired?: string; installed?: string; note?: string }> };

/** Machine ids (systemd's 32 hex digits) whose bucket for server 1.1.0 is outside and inside a 25% rollout. */
const ids = Array.from({ length: 40 }, (_, i) => (0x9e3779b9 * (i + 1) >>> 0).toString(16).padStart(8, '0').repeat(4));
const outside = ids.find((id) => rolloutBucket(id, 'server', '1.1.0') >= 25)!;
const inside = ids.find((id) => rolloutBucket(id, 'server', '1.1.0') < 25)!;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-fleet-'));
  server = await startTestServer();
  for (const [n, v] of [['server', '1.0.0'], ['server', '1.1.0'], ['cuda-libs', 'cu128-v1'], ['cuda-libs', 'cu126-v1']] as const) await asset(n, v);
  server.serve(MANIFEST, manifest('1.0.0'));
});

afterAll(async () => {
  for (const d of daemons) await d.stop().catch(() => undefined);
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe('fleet: rollout and targeting in the daemon', () => {
  it('driver 575 takes cu128; outside a 25% rollout the server stays and status says why; an id inside takes it', async () => {
    const { cfg, d } = await machine('m575', '575.51.03', outside);
    await d.waitFor((r) => r.event === 'generation.landed');
    expect(d.logs().find((r) => r.event === 'machine.facts')).toMatchObject({ machineId: true, machineIdSource: 'config', nvidiaDriver: '575.51.03' });
    let s = await status(cfg);
    expect(s.components['cuda-libs']).toMatchObject({ installed: 'cu128-v1', note: 'variant cu128 (nvidiaDriver >=570.26)' });
    expect(s.components.server!.installed).toBe('1.0.0');

    const mark = d.logs().length;
    server.serve(MANIFEST, manifest('1.1.0', 25));
    await d.waitFor((r) => r.event === 'manifest.changed', { since: mark });
    const bucket = rolloutBucket(outside, 'server', '1.1.0');
    await expect.poll(async () => (await status(cfg)).components.server?.note, { timeout: 10_000 }).toBe(`waiting for rollout: bucket ${bucket}, rollout 25%; keeping 1.0.0 (the manifest has 1.1.0)`);
    s = await status(cfg);
    expect(s.components.server).toMatchObject({ desired: '1.0.0', installed: '1.0.0' });
    const text = await runLander(['status', '--config', cfg]);
    expect(text.stdout).toContain(`waiting for rollout: bucket ${bucket}, rollout 25%`);

    // The same machine under an id inside the rollout takes the new version.
    const mark2 = d.logs().length;
    await writeFile(cfg, JSON.stringify({ ...JSON.parse(await readFile(cfg, 'utf8')), machineId: inside }));
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark2 });
    s = await status(cfg);
    expect(s.components.server).toMatchObject({ installed: '1.1.0' });
    expect(s.components.server!.note).toBeUndefined();
  }, 60_000);

  it('driver 535: cuda-libs is refused with what each variant needs, and nothing of it is downloaded', async () => {
    server.serve(MANIFEST, manifest('1.0.0'));
    const before = ['cuda-libs:cu128-v1', 'cuda-libs:cu126-v1'].map((k) => server.stats(new URL(assets[k]!.url).pathname).requests);
    const { cfg, d } = await machine('m535', '535.183.01', inside);
    await d.waitFor((r) => r.event === 'manifest.changed');
    await expect.poll(async () => (await status(cfg)).components['cuda-libs']?.note, { timeout: 10_000 }).toMatch(/^Cannot install cuda-libs/);
    const s = await status(cfg);
    expect(s.components['cuda-libs']!.installed).toBeUndefined();
    expect(['cuda-libs:cu128-v1', 'cuda-libs:cu126-v1'].map((k) => server.stats(new URL(assets[k]!.url).pathname).requests)).toEqual(before);
    expect(s.components['cuda-libs']!.note).toBe('Cannot install cuda-libs: no variant of cuda-libs fits this machine: cu128 needs nvidiaDriver >=570.26 (this machine: 535.183.01); cu126 needs nvidiaDriver >=560 (this machine: 535.183.01)');
  }, 60_000);
});
