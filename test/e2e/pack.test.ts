/**
 * `lander pack` end to end: the real CLI packs a generated PyInstaller
 * one-folder CUDA build; the output is served on 127.0.0.1 and installed by
 * `lander install`; the installed tree, GNU tar's and Python tarfile's
 * extractions all equal the source folder; packing again (and packing a
 * copy) gives the same digests; the manifest is readable by lander and its
 * signature by minisign.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/config/manifest.ts';
import { signedSequence, verifyManifestSignature } from '../../src/config/manifest-signature.ts';
import { formatSecretKey, generateKeyPair, publicKeyLine } from '../../src/config/minisign.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { runLander, complaints } from '../helpers/lander-cli.ts';
import { CUDA_PATHS, makeCudaOnedir } from '../helpers/onedir.ts';
import { snapshotTree } from '../helpers/release.ts';
import { sha256Hex } from '../helpers/archive.ts';
import { indexDigest } from '../../src/install/chunked/index-format.ts';

const EPOCH = '1767225600'; // 2026-01-01, as a CI would set from the commit
const VERSIONS = ['--component-version', 'server=0.3.1', '--component-version', 'cuda-libs=cu128-v1'];
const ASSETS = ['voicebox-server-cuda.tar.gz', 'cuda-libs-cu128-v1.tar.gz'];
let work: string;
let src: string;
let out: string;
let server: TestServer;

const pack = (args: string[]) => runLander(['pack', ...args], { SOURCE_DATE_EPOCH: EPOCH });
const sidecar = async (dir: string, asset: string) => (await readFile(path.join(dir, `${asset}.sha256`), 'utf8'));

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-pack-'));
  src = path.join(work, 'voicebox-server-cuda');
  out = path.join(work, 'release');
  await makeCudaOnedir(src, { libBytes: 256 * 1024 });
  const r = await pack([src, '--out', out, ...VERSIONS, '--torch-compat', '>=2.7.0,<2.11.0']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  server = await startTestServer();
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe('lander pack', () => {
  it('writes the voicebox assets and a lander manifest with the same digests', async () => {
    expect((await readdir(out)).sort()).toEqual(['cuda-libs-cu128-v1.tar.gz', 'cuda-libs-cu128-v1.tar.gz.index', 'cuda-libs-cu128-v1.tar.gz.index.sha256', 'cuda-libs-cu128-v1.tar.gz.sha256', 'cuda-libs.json', 'manifest.json', 'voicebox-server-cuda.tar.gz', 'voicebox-server-cuda.tar.gz.index', 'voicebox-server-cuda.tar.gz.index.sha256', 'voicebox-server-cuda.tar.gz.sha256']);
    const digests: Record<string, string> = {};
    for (const a of ASSETS) {
      const text = await sidecar(out, a);
      expect(text).toMatch(new RegExp(`^[0-9a-f]{64}  ${a.replaceAll('.', '\\.')}\\n$`));
      digests[a] = text.slice(0, 64);
    }
    const cuda = JSON.parse(await readFile(path.join(out, 'cuda-libs.json'), 'utf8'));
    expect(cuda).toEqual({ version: 'cu128-v1', torch_compat: '>=2.7.0,<2.11.0', archive: 'cuda-libs-cu128-v1.tar.gz', sha256: digests['cuda-libs-cu128-v1.tar.gz'] });
    const m = parseManifest(await readFile(path.join(out, 'manifest.json'), 'utf8'), { format: 'lander', url: 'https://example.org/v0.3.1/manifest.json' });
    expect(m.components.server).toMatchObject({ version: '0.3.1', urls: ['https://example.org/v0.3.1/voicebox-server-cuda.tar.gz'], sha256: digests['voicebox-server-cuda.tar.gz'] });
    expect(m.components['cuda-libs']).toMatchObject({ version: 'cu128-v1', urls: ['https://example.org/v0.3.1/cuda-libs-cu128-v1.tar.gz'], sha256: digests['cuda-libs-cu128-v1.tar.gz'] });
    expect(m.components.server!.size).toBeGreaterThan(0);
    // Each chunked archive's index is listed with its digest, which its own sidecar repeats.
    for (const [name, a] of [['server', 'voicebox-server-cuda.tar.gz'], ['cuda-libs', 'cuda-libs-cu128-v1.tar.gz']] as const) {
      const idx = await readFile(path.join(out, `${a}.index`));
      expect(m.components[name]!.index).toEqual({ url: `https://example.org/v0.3.1/${a}.index`, sha256: indexDigest(idx), size: idx.length });
      expect(await sidecar(out, `${a}.index`)).toBe(`${indexDigest(idx)}  ${a}.index\n`);
    }
  });

  it('splits as the nvidia rules say', async () => {
    const list = (a: string) => spawnSync('tar', ['-tzf', path.join(out, a)], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n && !n.endsWith('/'));
    expect(list('cuda-libs-cu128-v1.tar.gz').sort()).toEqual([...CUDA_PATHS].sort());
    expect(list('voicebox-server-cuda.tar.gz')).toContain('_internal/torch/lib/libtorch_cuda.so');
    expect(list('voicebox-server-cuda.tar.gz')).toContain('_internal/cuda_runtime_lib');
  });

  it('installs with lander install from loopback; the installed tree equals the source folder', async () => {
    for (const a of ASSETS) {
      await server.serveFile(`/v0.3.1/${a}`, path.join(out, a));
      await server.serveFile(`/v0.3.1/${a}.sha256`, path.join(out, `${a}.sha256`));
    }
    const root = path.join(work, 'root');
    const configPath = path.join(work, 'lander.json');
    await writeFile(configPath, JSON.stringify({
      root,
      components: {
        server: { version: '0.3.1', url: `${server.origin}/v0.3.1/voicebox-server-cuda.tar.gz`, sha256Url: '{url}.sha256' },
        'cuda-libs': { version: 'cu128-v1', url: `${server.origin}/v0.3.1/cuda-libs-{version}.tar.gz`, sha256Url: '{url}.sha256' },
      },
      download: { retries: 0, connectTimeout: '2s', idleTimeout: '2s' },
    }));
    const r = await runLander(['install', '--config', configPath]);
    expect(complaints(r)).toEqual([]);
    expect(r.code).toBe(0);
    // Content, exec bit and link target of every path; the empty folder and the hard-linked copy included.
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(await snapshotTree(src));
  });

  it('extracts with GNU tar and with Python tarfile (filter="data") to the source tree', async () => {
    const py = spawnSync('python3', ['-c', 'import tarfile; tarfile.data_filter']);
    expect(py.status, 'python3 with tarfile filters (3.12, or 3.8-3.11 with the 2023 security backport)').toBe(0);
    const gnu = path.join(work, 'gnu');
    const pyDir = path.join(work, 'py');
    await mkdir(gnu);
    await mkdir(pyDir);
    for (const a of ASSETS) {
      const t = spawnSync('tar', ['-xzf', path.join(out, a), '-C', gnu], { encoding: 'utf8' });
      expect(t.stderr).toBe('');
      expect(t.status).toBe(0);
      const p = spawnSync('python3', ['-c', 'import sys, tarfile\nwith tarfile.open(sys.argv[1]) as t: t.extractall(sys.argv[2], filter="data")', path.join(out, a), pyDir], { encoding: 'utf8' });
      expect(p.stderr).toBe('');
      expect(p.status).toBe(0);
    }
    const want = await snapshotTree(src);
    expect(await snapshotTree(gnu)).toEqual(want);
    expect(await snapshotTree(pyDir)).toEqual(want);
  });

  it('gives the same digests when packing again, and when packing a copy (new mtimes, hard link broken)', async () => {
    const copy = path.join(work, 'copy');
    expect(spawnSync('cp', ['-r', src, copy]).status).toBe(0);
    const again = path.join(work, 'again');
    const r1 = await pack([src, '--out', again, ...VERSIONS, '--torch-compat', '>=2.7.0,<2.11.0']);
    const r2 = await pack([copy, '--out', path.join(work, 'again-copy'), ...VERSIONS, '--base-url', 'https://mirror.example/rel/']);
    expect([r1.code, r2.code]).toEqual([0, 0]);
    for (const a of ASSETS) {
      expect(await sidecar(again, a)).toBe(await sidecar(out, a));
      expect(await sidecar(path.join(work, 'again-copy'), a)).toBe(await sidecar(out, a));
    }
    expect(await readFile(path.join(again, 'manifest.json'), 'utf8')).toBe(await readFile(path.join(out, 'manifest.json'), 'utf8'));
    const m = JSON.parse(await readFile(path.join(work, 'again-copy', 'manifest.json'), 'utf8'));
    expect(m.components.server.url).toBe('https://mirror.example/rel/voicebox-server-cuda.tar.gz');
  });

  it('signs manifest.json with --key: lander and minisign verify it', async () => {
    const key = generateKeyPair();
    const keyFile = path.join(work, 'release.key');
    await writeFile(keyFile, formatSecretKey(key), { mode: 0o600 });
    const signed = path.join(work, 'signed');
    const r = await pack([src, '--out', signed, ...VERSIONS, '--key', keyFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const bytes = await readFile(path.join(signed, 'manifest.json'));
    const sig = await readFile(path.join(signed, 'manifest.json.minisig'), 'utf8');
    const url = 'https://example.org/rel/manifest.json';
    const info = verifyManifestSignature(url, bytes, sig, key);
    expect(signedSequence(url, parseManifest(bytes.toString('utf8'), { format: 'lander', url }), info)).toBe(Number(EPOCH));
    if (existsSync('/usr/bin/minisign')) {
      const v = spawnSync('minisign', ['-V', '-m', path.join(signed, 'manifest.json'), '-P', publicKeyLine(key)], { encoding: 'utf8' });
      expect(v.stderr).toBe('');
      expect(v.status).toBe(0);
    }
  });

  it('refuses a build without CUDA libraries: cuda-libs would be empty, nothing written', async () => {
    const cpu = path.join(work, 'cpu');
    await makeCudaOnedir(cpu, { withoutCuda: true });
    const dest = path.join(work, 'cpu-out');
    const r = await pack([cpu, '--out', dest, ...VERSIONS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/component cuda-libs would be empty/);
    expect(await readdir(dest)).toEqual([]);
  });

  it('refuses a link lander install would reject, before writing anything', async () => {
    const bad = path.join(work, 'bad');
    await makeCudaOnedir(bad);
    await symlink('cudnn/lib', path.join(bad, '_internal/nvidia/deep'));
    await symlink('nvidia/deep/../../../..', path.join(bad, '_internal/up'));
    const dest = path.join(work, 'bad-out');
    const r = await pack([bad, '--out', dest, ...VERSIONS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/"_internal\/up" \(server\) is a symlink that, checked within its own archive as lander install does/);
    expect(await readdir(dest)).toEqual([]);
  });

  it('says what is missing: a version, the output folder', async () => {
    const r = await pack([src, '--out', path.join(work, 'x'), '--component-version', 'server=0.3.1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no version for cuda-libs; pass --component-version cuda-libs=VERSION/);
    const r2 = await pack([src]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--out <dir> is required/);
  });
});
