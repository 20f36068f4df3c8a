/**
 * Disk space, for real: lander's root on a small tmpfs mounted for the test
 * (CI runs as root, as mount needs). The preflight refuses a download that
 * cannot fit; a disk that fills up during extraction (ENOSPC) leaves staging
 * clean and the current generation intact; freeing space lets the next
 * install finish, resuming the download.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig, snapshotTree } from '../helpers/release.ts';
import { runLander, complaints } from '../helpers/lander-cli.ts';

let server: TestServer;
let work: string;
let mnt: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-disk-'));
  mnt = path.join(work, 'mnt');
  await mkdir(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mnt]);
  await makeCoreTree(path.join(work, 'core-1'), '1.0.0', { smallFiles: 5 });
  await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', path.join(work, 'core-1'));
  await makeCudaTree(path.join(work, 'cuda'), { libBytes: 64 * 1024, libs: 1 });
  await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', path.join(work, 'cuda'));
  // 2.0.0: 12 MiB that does not compress; it cannot fit with its extracted size on 32 MiB.
  const big = path.join(work, 'core-2');
  await makeCoreTree(big, '2.0.0', { smallFiles: 1 });
  await writeFile(path.join(big, '_internal/model.bin'), randomBytes(12 * 1024 * 1024));
  await publish(server, '2.0.0', 'voicebox-server-cuda.tar.gz', big);
  // 3.0.0: 6 MiB of archive that extracts to 18 MiB.
  const expands = path.join(work, 'core-3');
  await makeCoreTree(expands, '3.0.0', { smallFiles: 1 });
  for (let i = 0; i < 3; i++) await writeFile(path.join(expands, `_internal/lib${i}.so`), Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(4 * 1024 * 1024)]));
  await publish(server, '3.0.0', 'voicebox-server-cuda.tar.gz', expands);
});

afterAll(async () => {
  await server?.close();
  if (mnt) execFileSync('umount', [mnt]);
  await rm(work, { recursive: true, force: true });
});

const free = () => {
  const s = statfsSync(mnt);
  return s.bavail * s.bsize;
};

describe('disk space', () => {
  const root = () => path.join(mnt, 'root');
  const configPath = () => path.join(work, 'lander.json');
  const write = (core: string, disk: Record<string, unknown>) =>
    writeFile(configPath(), JSON.stringify(releaseConfig(server, root(), { server: core, cuda: 'cu128-v1', appTag: 'libs' }, { disk })));
  const rootState = async () => ({
    current: await snapshotTree(path.join(root(), 'current')),
    state: await readFile(path.join(root(), 'state.json'), 'utf8'),
    staging: await readdir(path.join(root(), 'staging')),
  });

  it('refuses a download that cannot fit, naming the folder and the bytes missing', async () => {
    await write('1.0.0', { margin: '1MiB' });
    expect((await runLander(['install', '--config', configPath()])).code).toBe(0);
    const before = await rootState();
    await write('2.0.0', { margin: '1MiB' });
    const r = await runLander(['install', '--config', configPath()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`Cannot install server 2\\.0\\.0: ${path.join(root(), 'staging').replaceAll('/', '\\/')} has [\\d.]+ MiB free but needs [\\d.]+ MiB .*free [\\d.]+ MiB \\(\\d+ bytes\\)`));
    const failed = r.logs.find((l) => l.event === 'install.failed');
    expect((failed!.err as { code: string }).code).toBe('ERR_DISK_SPACE');
    expect(await rootState()).toEqual(before);
    // No body was written.
    for (const f of await readdir(path.join(root(), 'downloads'))) expect((await stat(path.join(root(), 'downloads', f))).size).toBe(0);
  });

  it('ENOSPC during extraction: staging cleaned, current intact, clear error; after freeing space the install resumes and lands', async () => {
    await write('3.0.0', { margin: '1MiB', expansionEstimate: 1 });
    const before = await rootState();
    // Leave ~20 MiB: the preflight (6 + 6 + 1 MiB) passes, the real need (6 + 18 MiB) does not.
    const filler = path.join(mnt, 'filler');
    await writeFile(filler, Buffer.alloc(Math.max(0, free() - 20 * 1024 * 1024)));
    const r = await runLander(['install', '--config', configPath()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Cannot install server 3\.0\.0: the file system holding .* is full/);
    expect((r.logs.find((l) => l.event === 'install.failed')!.err as { code: string }).code).toBe('ERR_DISK_FULL');
    expect(await rootState()).toEqual(before);
    expect(await readFile(path.join(root(), 'current/_internal/VERSION'), 'utf8')).toBe('1.0.0\n');

    await rm(filler);
    const again = await runLander(['install', '--config', configPath()]);
    expect(complaints(again)).toEqual([]);
    expect(again.code).toBe(0);
    expect(await readFile(path.join(root(), 'current/_internal/VERSION'), 'utf8')).toBe('3.0.0\n');
    const verified = again.logs.find((l) => l.event === 'install.verified' && l.component === 'server');
    expect(verified!.reusedBytes as number).toBeGreaterThan(0);
  });
});
