/**
 * The daemon under Deno with the narrow permissions the README gives,
 * end to end: install, start the server,
 * answer /status on its socket, stop cleanly. Runs from either runtime.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';
import { parseLogs } from '../helpers/lander-cli.ts';
import { request } from '../helpers/raw-http.ts';
import { freePort } from '../helpers/free-port.ts';
import { signalChild } from '../../src/base/runtime.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DENO = path.join(REPO, 'node_modules/.bin/deno');
let server: TestServer;
let work: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-deno-'));
  await makeCoreTree(path.join(work, 'core'), '1.0.0', { smallFiles: 10 });
  await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', path.join(work, 'core'));
  await makeCudaTree(path.join(work, 'cuda'), { libBytes: 64 * 1024, libs: 1 });
  await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', path.join(work, 'cuda'));
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});


// Write access cannot be scoped to the root: Deno.symlink() demands unscoped --allow-read and
// --allow-write (a link's target is resolved only when traversed), and CUDA trees hold symlinks.
// Everything else is as narrow as lander allows: sys access to hostname, uid and statfs only.
it('runs the daemon under Deno with narrow permissions', async () => {
  const root = path.join(work, 'root');
  await mkdir(root);
  const port = await freePort();
  const configPath = path.join(work, 'lander.json');
  await writeFile(configPath, JSON.stringify(releaseConfig(server, root, { server: '1.0.0', cuda: 'cu128-v1', appTag: 'libs' }, {
    server: { command: './voicebox-server-cuda', args: ['--port', String(port)], health: { url: `http://127.0.0.1:${port}/health`, interval: '50ms', timeout: '20s' } },
  })));
  const child = spawn(DENO, ['run', '--allow-env', '--allow-sys=hostname,uid,statfs', '--allow-read', '--allow-write', '--allow-net', '--allow-run', `${REPO}src/main.ts`, 'run', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => child.on('close', (code, signal) => r({ code, signal })));
  // Whatever fails below, no daemon (and so no server) outlives the test.
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
  });
  await expect.poll(() => parseLogs(out).some((l) => l.event === 'generation.landed'), { timeout: 45_000, interval: 100 }).toBe(true);
  const status = await request({ socketPath: path.join(root, 'lander.sock') }, 'GET', '/status');
  expect(status.status).toBe(200);
  expect(status.json()).toMatchObject({ runtime: expect.stringMatching(/^deno /), server: { state: 'healthy' }, components: { server: { installed: '1.0.0' } } });
  const cwd = (await (await fetch(`http://127.0.0.1:${port}/cwd`)).json()) as { cwd: string };
  expect(await readFile(path.join(cwd.cwd, '_internal/VERSION'), 'utf8')).toBe('1.0.0\n');
  signalChild(child, 'SIGTERM');
  const r = await exited;
  expect(err).not.toMatch(/NotCapable|Requires .* access/);
  expect(parseLogs(out).at(-1)).toMatchObject({ event: 'daemon.stopped' });
  expect(r).toEqual({ code: 0, signal: null });
}, 90_000);
