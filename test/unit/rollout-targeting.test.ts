import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inRollout, rolloutBucket } from '../../src/plan/rollout.ts';
import { chooseVariant, compareDriverVersions, driverSatisfies, isDriverConstraint } from '../../src/plan/targeting.ts';
import { parseMachineId, parseNvidiaSmiOutput, parseNvidiaVersionFile, readMachineFacts } from '../../src/plan/machine-facts.ts';
import { decideForMachine, manifestForMachine } from '../../src/plan/for-machine.ts';
import { parseManifest, type ManifestChoice } from '../../src/config/manifest.ts';
import { desiredSpecs } from '../../src/plan/desired.ts';
import { validateConfig } from '../../src/config/schema.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

/** 20 machine ids as systemd writes them: 32 hex digits, fixed so every run sees the same ones. */
const IDS = Array.from({ length: 20 }, (_, i) => (i * 2654435761 >>> 0).toString(16).padStart(8, '0').repeat(4));

describe('staged rollout', () => {
  it('20 machine ids at 25% give the same subset on every run, its size within binomial bounds', () => {
    const subset = () => IDS.filter((id) => inRollout({ machineId: id, component: 'server', version: '1.2.0', rollout: { percent: 25 } }).take);
    const first = subset();
    expect(subset()).toEqual(first);
    // Binomial(20, 0.25): mean 5, sd 1.94; [1, 11] holds with probability > 99.8%.
    expect(first.length).toBeGreaterThanOrEqual(1);
    expect(first.length).toBeLessThanOrEqual(11);
    // The bucket is SHA-256(id \0 component \0 version), first 64 bits scaled to 100: pinned, so no release of
    // lander moves a fleet's machines between buckets (computed independently with node:crypto and BigInt).
    expect(rolloutBucket('00000000000000000000000000000000', 'server', '1.2.0')).toBe(87);
    expect(IDS.slice(0, 4).map((id) => rolloutBucket(id, 'server', '1.2.0'))).toEqual([87, 61, 28, 42]);
    expect(IDS.map((id) => rolloutBucket(id, 'server', '1.2.0')).every((b) => Number.isInteger(b) && b >= 0 && b < 100)).toBe(true);
  });

  it('the subset grows with the percent (a machine in at 25% stays in at 50%) and differs per version', () => {
    const at = (p: number, v = '1.2.0') => IDS.filter((id) => inRollout({ machineId: id, component: 'server', version: v, rollout: { percent: p } }).take);
    const q = at(25);
    const h = at(50);
    for (const id of q) expect(h).toContain(id);
    expect(at(0)).toEqual([]);
    expect(at(100)).toEqual(IDS);
    // Another version draws other buckets: not always the same first machines.
    const buckets = (v: string) => IDS.map((id) => rolloutBucket(id, 'server', v));
    expect(buckets('1.3.0')).not.toEqual(buckets('1.2.0'));
  });

  it('says where the machine stands: bucket and percent, or the missing id', () => {
    const id = IDS.find((x) => rolloutBucket(x, 'server', '1.2.0') >= 25)!;
    const b = rolloutBucket(id, 'server', '1.2.0');
    expect(inRollout({ machineId: id, component: 'server', version: '1.2.0', rollout: { percent: 25 } })).toEqual({ take: false, bucket: b, reason: `waiting for rollout: bucket ${b}, rollout 25%` });
    expect(inRollout({ component: 'server', version: '1.2.0', rollout: { percent: 25 } })).toMatchObject({ take: false, reason: expect.stringMatching(/no id.*machineId/) });
    expect(inRollout({ component: 'server', version: '1.2.0' })).toEqual({ take: true });
  });
});

describe('targeting', () => {
  const variants = [
    { name: 'cu128', requires: { nvidiaDriver: '>=570.26', os: 'linux' } },
    { name: 'cu126', requires: { nvidiaDriver: '>=560' } },
  ];
  const linux = (nvidiaDriver?: string) => ({ os: 'linux', arch: 'x64', ...(nvidiaDriver ? { nvidiaDriver } : {}) });

  it('picks cu126 on driver 560, cu128 on driver 575, and refuses with a reason on 535', () => {
    expect(chooseVariant('cuda-libs', variants, linux('560.35.03'))).toMatchObject({ variant: { name: 'cu126' } });
    expect(chooseVariant('cuda-libs', variants, linux('575.51.03'))).toMatchObject({ variant: { name: 'cu128' } });
    expect(chooseVariant('cuda-libs', variants, linux('535.183.01'))).toEqual({
      reason: 'no variant of cuda-libs fits this machine: cu128 needs nvidiaDriver >=570.26 (this machine: 535.183.01); cu126 needs nvidiaDriver >=560 (this machine: 535.183.01)',
    });
  });

  it('names os, arch and a missing driver', () => {
    const r = chooseVariant('cuda-libs', [{ name: 'win', requires: { os: 'win32', arch: 'arm64' } }, { name: 'gpu', requires: { nvidiaDriver: '>=1' } }], { os: 'linux', arch: 'x64', nvidiaDriverError: '/proc/driver/nvidia/version: ENOENT' });
    expect(r).toEqual({ reason: 'no variant of cuda-libs fits this machine: win needs os win32 (this machine: linux) and arch arm64 (this machine: x64); gpu needs nvidiaDriver >=1 (no NVIDIA driver found: /proc/driver/nvidia/version: ENOENT)' });
    expect(chooseVariant('x', [{ name: 'any' }], { os: 'linux', arch: 'x64' })).toMatchObject({ variant: { name: 'any' } });
  });

  it('compares dotted driver versions numerically, with ranges', () => {
    expect(compareDriverVersions('570.133.07', '570.26')).toBe(1); // 133 > 26, not a string compare
    expect(compareDriverVersions('570.26', '570.26.0')).toBe(0);
    expect(driverSatisfies('565.57.01', '>=560 <570')).toBe(true);
    expect(driverSatisfies('570.86', '>=560 <570')).toBe(false);
    expect(driverSatisfies('575.51.03', '575.51.03')).toBe(true);
    expect(driverSatisfies('575', '>575')).toBe(false);
    expect(isDriverConstraint('>=570.26')).toBe(true);
    expect(isDriverConstraint('^570')).toBe(false);
    expect(driverSatisfies('575', 'latest')).toBe(false);
  });
});

describe('machine facts', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'lander-facts-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('parses both forms of /proc/driver/nvidia/version and nvidia-smi output', () => {
    expect(parseNvidiaVersionFile('NVRM version: NVIDIA UNIX x86_64 Kernel Module  575.51.03  Wed May 28 10:49:30 UTC 2025\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n')).toBe('575.51.03');
    expect(parseNvidiaVersionFile('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.07  Release Build  (dvs-builder@U16-I3-B03-4-3)  Fri Mar 14 07:37:09 UTC 2025\n')).toBe('570.133.07');
    expect(parseNvidiaVersionFile('garbage\n')).toBeUndefined();
    expect(parseNvidiaSmiOutput('560.35.03\n560.35.03\n')).toBe('560.35.03');
    expect(parseNvidiaSmiOutput('NVIDIA-SMI has failed\n')).toBeUndefined();
    expect(parseMachineId('4c4c4544004a35108052b4c04f4d3532\n')).toBe('4c4c4544004a35108052b4c04f4d3532');
    expect(parseMachineId('\n')).toBeUndefined();
  });

  it('reads the driver from a stand-in file, the machine id from a file or the config, and says why a driver is missing', async () => {
    const ver = path.join(dir, 'version');
    const mid = path.join(dir, 'machine-id');
    await writeFile(ver, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  560.35.03  Fri Aug 16 21:39:15 UTC 2024\n');
    await writeFile(mid, `${IDS[0]}\n`);
    const f = await readMachineFacts({ nvidiaVersionPath: ver, machineIdPath: mid, nvidiaSmi: false });
    expect(f).toMatchObject({ nvidiaDriver: '560.35.03', nvidiaDriverSource: ver, machineId: IDS[0], machineIdSource: mid, os: process.platform, arch: process.arch });
    expect(await readMachineFacts({ machineId: 'from-config', machineIdPath: mid, nvidiaVersionPath: ver, nvidiaSmi: false })).toMatchObject({ machineId: 'from-config', machineIdSource: 'config' });
    const none = await readMachineFacts({ nvidiaVersionPath: path.join(dir, 'absent'), machineIdPath: path.join(dir, 'absent'), nvidiaSmi: path.join(dir, 'no-nvidia-smi') });
    expect(none.nvidiaDriver).toBeUndefined();
    expect(none.machineId).toBeUndefined();
    expect(none.nvidiaDriverError).toMatch(/absent: ENOENT; .*no-nvidia-smi: not found/);
  });
});

describe('a manifest component for this machine', () => {
  const manifestText = JSON.stringify({
    schema: 1,
    components: {
      server: { version: '1.2.0', url: 'server-1.2.0.tar.gz', sha256: A, rollout: { percent: 25 } },
      'cuda-libs': {
        variants: [
          { name: 'cu128', requires: { nvidiaDriver: '>=570.26' }, version: 'cu128-v1', url: 'oci://registry.example/lander/cuda-libs:cu128-v1', sha256: B },
          { name: 'cu126', requires: { nvidiaDriver: '>=560' }, version: 'cu126-v1', url: 'cuda-libs-cu126-v1.tar.gz', sha256: C },
        ],
      },
    },
  });
  const m = parseManifest(manifestText, { format: 'lander', url: 'https://rel.example/stable.json' });
  const facts = (nvidiaDriver: string, machineId = IDS[0]) => ({ os: 'linux', arch: 'x64', nvidiaDriver, machineId });
  const out = IDS.find((x) => rolloutBucket(x, 'server', '1.2.0') >= 25)!;
  const inn = IDS.find((x) => rolloutBucket(x, 'server', '1.2.0') < 25)!;

  it('parses variants, requires and rollout, and refuses an unknown requirement', () => {
    expect(m.components.server).toEqual({ version: '1.2.0', urls: ['https://rel.example/server-1.2.0.tar.gz'], sha256: A, rollout: { percent: 25 } });
    expect(m.choices?.['cuda-libs']?.variants.map((v) => [v.name, v.urls[0]])).toEqual([['cu128', 'oci://registry.example/lander/cuda-libs:cu128-v1'], ['cu126', 'https://rel.example/cuda-libs-cu126-v1.tar.gz']]);
    expect(() => parseManifest(JSON.stringify({ schema: 1, components: { x: { variants: [{ name: 'a', requires: { cudaCompute: '9.0' }, version: '1', url: 'a', sha256: A }] } } }), { format: 'lander', url: 'https://rel.example/m.json' })).toThrow(/components\.x\.variants\[0\]\.requires/);
    expect(() => parseManifest(JSON.stringify({ schema: 1, components: { x: { version: '1', url: 'a', sha256: A, rollout: { percent: 101 } } } }), { format: 'lander', url: 'https://rel.example/m.json' })).toThrow(/components\.x\.rollout\.percent/);
  });

  it('a machine outside the rollout keeps its version and says so; one inside, or with nothing installed, takes it', () => {
    const installed = { server: { version: '1.1.0', sha256: C, source: 'https://rel.example/server-1.1.0.tar.gz' } };
    const b = rolloutBucket(out, 'server', '1.2.0');
    const d = decideForMachine('server', m.components.server!, { facts: facts('575.51.03', out), installed });
    expect(d).toEqual({ keep: { version: '1.1.0', urls: [installed.server.source], sha256: C }, note: { component: 'server', kind: 'waiting', bucket: b, percent: 25, message: `waiting for rollout: bucket ${b}, rollout 25%; keeping 1.1.0 (the manifest has 1.2.0)` } });
    expect(decideForMachine('server', m.components.server!, { facts: facts('575.51.03', inn), installed })).toEqual({ take: m.components.server });
    expect(decideForMachine('server', m.components.server!, { facts: facts('575.51.03', out), installed: {} })).toEqual({ take: m.components.server });
    // A version the config pins is not held back.
    expect(decideForMachine('server', m.components.server!, { facts: facts('575.51.03', out), installed, pinned: new Set(['server']) })).toEqual({ take: m.components.server });
  });

  it('through desiredSpecs: cu126 on 560, cu128 on 575, a refusal with a reason on 535 (keeping what is installed)', () => {
    const config = validateConfig({ root: '/var/lib/lander', manifest: { url: 'https://rel.example/stable.json' }, components: { server: {} } });
    const on = (driver: string, installed = {}) => desiredSpecs(config, m, { facts: facts(driver), installed });
    expect(on('560.35.03').specs.find((s) => s.name === 'cuda-libs')).toMatchObject({ version: 'cu126-v1', sha256: C });
    expect(on('575.51.03').specs.find((s) => s.name === 'cuda-libs')).toMatchObject({ version: 'cu128-v1', sha256: B, urls: ['oci://registry.example/lander/cuda-libs:cu128-v1'] });
    expect(on('575.51.03').notes).toContainEqual({ component: 'cuda-libs', kind: 'variant', variant: 'cu128', message: 'variant cu128 (nvidiaDriver >=570.26)' });
    const refused = on('535.183.01');
    expect(refused.specs.map((s) => s.name)).toEqual(['server']);
    expect(refused.problems).toEqual([{ component: 'cuda-libs', message: expect.stringMatching(/^Cannot install cuda-libs: no variant of cuda-libs fits this machine: cu128 needs nvidiaDriver >=570.26 \(this machine: 535.183.01\); cu126 needs nvidiaDriver >=560/) }]);
    const kept = on('535.183.01', { 'cuda-libs': { version: 'cu118-v1', sha256: A, source: 'https://rel.example/old.tar.gz' } });
    expect(kept.specs.find((s) => s.name === 'cuda-libs')).toMatchObject({ version: 'cu118-v1', sha256: A });
    expect(kept.notes.find((n) => n.component === 'cuda-libs')?.message).toMatch(/keeping cu118-v1$/);
  });

  it('manifestForMachine leaves plain components only', () => {
    const v = manifestForMachine(m, { facts: facts('575.51.03', inn), installed: {} });
    expect(v.manifest.choices).toBeUndefined();
    expect(Object.keys(v.manifest.components).sort()).toEqual(['cuda-libs', 'server']);
    const choice: ManifestChoice = { variants: [{ name: 'a', version: '2', urls: ['https://x/a'], sha256: A }], rollout: { percent: 0 } };
    const held = decideForMachine('c', choice, { facts: facts('1', inn), installed: { c: { version: '1', sha256: B, source: 'https://x/1' } } });
    expect(held).toMatchObject({ keep: { version: '1' }, note: { kind: 'waiting', variant: 'a', percent: 0 } });
  });
});
