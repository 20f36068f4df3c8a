/**
 * `lander verify` end to end: install with the real CLI, then tamper with the
 * live tree in every way verify must notice (content of the same size, a
 * missing file, an extra file, a mode, a symlink target, a type), and read
 * the report in text and JSON. Exit 0 only when the tree is clean.
 */
import { chmod, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';
import { runLander } from '../helpers/lander-cli.ts';
import type { VerifyResult } from '../../src/cli/commands/verify.ts';

let server: TestServer;
let work: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-verify-'));
  await makeCoreTree(path.join(work, 'core'), '1.0.0', { smallFiles: 30 });
  await makeCudaTree(path.join(work, 'cuda'), { libBytes: 256 * 1024, libs: 2 });
  await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', path.join(work, 'core'));
  await publish(server, '1.0.0', 'cuda-libs-cu128-v1.tar.gz', path.join(work, 'cuda'));
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe('lander verify', () => {
  it('passes on a fresh install, then names every kind of difference', async () => {
    const root = path.join(work, 'root');
    const configPath = path.join(work, 'lander.json');
    await writeFile(configPath, JSON.stringify(releaseConfig(server, root, { server: '1.0.0', cuda: 'cu128-v1', appTag: '1.0.0' })));
    expect((await runLander(['install', '--config', configPath])).code).toBe(0);

    const clean = await runLander(['verify', '--config', configPath]);
    expect(clean.stdout).toMatch(/generation 1: \d+ paths, .* hashed: OK/);
    expect(clean.code).toBe(0);
    const cleanJson = JSON.parse((await runLander(['verify', '--config', configPath, '--json', '--generation', '1'])).stdout) as VerifyResult;
    expect(cleanJson).toMatchObject({ generation: 1, ok: true, unhashed: 0, differences: [] });
    expect(cleanJson.bytes).toBeGreaterThan(512 * 1024);

    // The farm's files are hard links into the read-only store: make them writable to tamper.
    const cur = path.join(root, 'current');
    const f = (p: string) => path.join(cur, p);
    await chmod(f('_internal/VERSION'), 0o644);
    await writeFile(f('_internal/VERSION'), '9.9.9\n'); // same length, other content
    await chmod(f('_internal/VERSION'), 0o444);
    await unlink(f('_internal/voicebox/mod3.py'));
    await writeFile(f('_internal/stray.txt'), 'not from any archive');
    await chmod(f('voicebox-server-cuda'), 0o555 | 0o200);
    await unlink(f('_internal/first.py'));
    await symlink('voicebox/mod1.py', f('_internal/first.py'));
    await unlink(f('_internal/nvidia/cublas/lib/libcublas0.so'));
    await mkdir(f('_internal/nvidia/cublas/lib/libcublas0.so'));

    const bad = await runLander(['verify', '--config', configPath, '--json']);
    expect(bad.code).toBe(1);
    const r = JSON.parse(bad.stdout) as VerifyResult;
    expect(r.ok).toBe(false);
    const kinds = Object.fromEntries(r.differences.map((d) => [`${d.kind} ${d.path}`, d]));
    expect(kinds['content _internal/VERSION']).toMatchObject({ component: 'server' });
    expect(kinds['missing _internal/voicebox/mod3.py']).toMatchObject({ component: 'server', expected: 'file' });
    expect(kinds['extra _internal/stray.txt']).toMatchObject({ actual: 'file' });
    expect(kinds['mode voicebox-server-cuda']).toMatchObject({ expected: '0555', actual: '0755' });
    expect(kinds['link _internal/first.py']).toMatchObject({ expected: 'voicebox/mod0.py', actual: 'voicebox/mod1.py' });
    expect(kinds['type _internal/nvidia/cublas/lib/libcublas0.so']).toMatchObject({ component: 'cuda-libs', expected: 'symlink', actual: 'directory' });
    expect(r.differences).toHaveLength(6);

    const text = await runLander(['verify', '--config', configPath]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('content  _internal/VERSION (server)');
    expect(text.stdout).toMatch(/6 difference\(s\)/);

    const usage = await runLander(['verify', '--config', configPath, '--generation', 'x']);
    expect(usage.code).toBe(2);
    const none = await runLander(['verify', '--config', configPath, '--generation', '7']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('Cannot verify generation 7');
  });
});
