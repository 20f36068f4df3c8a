/**
 * Landing new generations under a running server: restart on a new core,
 * rollback when it never gets healthy or crash-loops, idle-deferred restarts.
 * Real HTTP server, real archives, the real stand-in server as a child.
 */
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.ts';
import { Reconciler } from '../../src/plan/reconciler.ts';
import { createLogger } from '../../src/report/log.ts';
import { Store } from '../../src/store/store.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';
import { freePort } from '../helpers/free-port.ts';

let server: TestServer;
let work: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-landing-'));
  const mk = async (v: string, flags?: string) => {
    const dir = path.join(work, `src-core-${v}`);
    await makeCoreTree(dir, v, { smallFiles: 20, ...(flags ? { flags } : {}) });
    await publish(server, v, 'voicebox-server-cuda.tar.gz', dir);
  };
  await mk('1.0.0');
  await mk('1.1.0');
  await mk('1.2.0-never-healthy', '--never-healthy');
  await mk('1.3.0-crashes', '--exit-after-ms 300');
  const cudaDir = path.join(work, 'src-cuda');
  await makeCudaTree(cudaDir, { libBytes: 256 * 1024, libs: 2 });
  await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', cudaDir);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});


type Rec = Record<string, any>;

async function setup(name: string, serverExtra: Record<string, unknown> = {}) {
  const root = path.join(work, name);
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const records: Rec[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void records.push(JSON.parse(s)) } });
  const raw = (coreVersion: string) =>
    releaseConfig(server, root, { server: coreVersion, cuda: 'cu128-v1', appTag: 'libs' }, {
      server: {
        command: './voicebox-server-cuda',
        args: ['--port', String(port)],
        health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '4s' },
        stop: { timeout: '3s' },
        ...serverExtra,
      },
    });
  const store = await Store.open(root, log);
  const lander = new Reconciler({ config: validateConfig(raw('1.0.0')), store, log });
  cleanups.push(async () => {
    await lander.shutdown();
    await store.close();
  });
  const setVersion = (v: string) => {
    lander.setConfig(validateConfig(raw(v)));
  };
  const whoami = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/cwd`);
    return (await res.json()) as { cwd: string; pid: number };
  };
  return { root, port, records, lander, store, setVersion, whoami };
}

describe('landing a new generation', () => {
  it('restarts the server on a new core; the new process runs in the new generation\'s folder', async () => {
    const t = await setup('restart');
    await t.lander.reconcile();
    expect(t.lander.supervisor!.state).toBe('healthy');
    const first = await t.whoami();
    expect(first.cwd).toBe(await realpath(path.join(t.root, 'generations/1')));

    t.setVersion('1.1.0');
    const landed = new Promise((r) => t.lander.once('landed', r));
    await t.lander.reconcile();
    await landed;
    const second = await t.whoami();
    expect(second.pid).not.toBe(first.pid);
    expect(second.cwd).toBe(await realpath(path.join(t.root, 'generations/2')));
    expect(await readFile(path.join(second.cwd, '_internal/VERSION'), 'utf8')).toBe('1.1.0\n');
    expect(t.store.current()!.status).toBe('good');
    const swap = t.records.find((r) => r.event === 'generation.swap' && r.to === 2);
    expect(swap).toMatchObject({ from: 1 });
  });

  it('rolls back when the new core never becomes healthy, and does not retry that version', async () => {
    const t = await setup('never-healthy');
    await t.lander.reconcile();
    const before = await t.whoami();

    t.setVersion('1.2.0-never-healthy');
    const rolledBack = new Promise<Rec>((r) => t.lander.once('rollback', r));
    await t.lander.reconcile();
    expect(await rolledBack).toMatchObject({ from: 2, to: 1, bad: { server: '1.2.0-never-healthy' } });
    expect(t.store.state.current).toBe(1);
    expect(t.lander.supervisor!.state).toBe('healthy');
    const after = await t.whoami();
    expect(after.cwd).toBe(before.cwd);
    expect(after.pid).not.toBe(before.pid);
    const state = JSON.parse(await readFile(path.join(t.root, 'state.json'), 'utf8'));
    expect(state.bad).toEqual({ server: ['1.2.0-never-healthy'] });
    const err = t.records.find((r) => r.event === 'rollback');
    expect(err.level).toBe('error');
    expect(err.msg).toMatch(/server 1\.2\.0-never-healthy.*Rolled back to generation 1.*will not be retried until an operator runs lander unmark COMPONENT VERSION/);

    // Asking again for the bad version fetches nothing and keeps generation 1 running.
    const requests = server.stats('/download/v1.2.0-never-healthy/voicebox-server-cuda.tar.gz').requests;
    await t.lander.reconcile();
    expect(server.stats('/download/v1.2.0-never-healthy/voicebox-server-cuda.tar.gz').requests).toBe(requests);
    expect(t.records.some((r) => r.event === 'install.skip-bad')).toBe(true);
    expect((await t.whoami()).pid).toBe(after.pid);

    // A new version is tried again.
    t.setVersion('1.1.0');
    await t.lander.reconcile();
    expect(t.store.current()!.components.server!.version).toBe('1.1.0');
    expect(t.lander.supervisor!.state).toBe('healthy');
  });

  it('rolls back when the new core crash-loops after becoming healthy', async () => {
    const t = await setup('crash-loop', { restart: { initialDelay: '50ms', maxDelay: '200ms', crashLoopExits: 3, window: '30s' } });
    await t.lander.reconcile();
    t.setVersion('1.3.0-crashes');
    const rolledBack = new Promise<Rec>((r) => t.lander.once('rollback', r));
    await t.lander.reconcile();
    const rb = await rolledBack;
    expect(rb).toMatchObject({ from: 2, to: 1, reason: 'the server crash-looped', bad: { server: '1.3.0-crashes' } });
    // The old one serves again.
    await expect.poll(() => t.lander.supervisor!.state, { timeout: 10_000 }).toBe('healthy');
    expect((await t.whoami()).cwd).toBe(await realpath(path.join(t.root, 'generations/1')));
    expect(t.records.filter((r) => r.event === 'server.exit' && r.generation === 2).length).toBeGreaterThanOrEqual(3);
  });

  it('defers an idle-gated restart until the server says idle', async () => {
    const idleFile = path.join(work, 'idle-flag');
    const t = await setup('idle', { env: { STANDIN_IDLE_FILE: idleFile }, restart: { when: 'idle', idle: { url: 'http://127.0.0.1:1/idle', json: { idle: true }, interval: '50ms', maxDeferral: '20s' } } });
    // The idle URL needs the port: patch it in.
    const port = t.port;
    const cfg = (v: string) => {
      t.setVersion(v);
      t.lander.config.server!.restart.idle!.url = `http://127.0.0.1:${port}/idle`;
    };
    cfg('1.0.0');
    await t.lander.reconcile();
    const first = await t.whoami();
    cfg('1.1.0');
    // What /status shows meanwhile: the deferred restart, its start and its bound; then that it is over.
    const waits: unknown[] = [];
    t.lander.on('idle-wait', (w) => waits.push(w));
    const landing = t.lander.reconcile();
    await expect.poll(() => t.store.state.generations.length, { timeout: 10_000 }).toBe(2);
    await new Promise((r) => setTimeout(r, 500));
    // Busy: still the old process, still generation 1.
    expect((await t.whoami()).pid).toBe(first.pid);
    expect(t.store.state.current).toBe(1);
    expect(waits).toEqual([{ generation: 2, since: expect.any(String), maxDeferralMs: 20_000 }]);
    await writeFile(idleFile, '');
    await landing;
    expect(waits.at(-1)).toBeUndefined();
    expect(t.store.state.current).toBe(2);
    expect((await t.whoami()).pid).not.toBe(first.pid);
    expect(t.records.find((r) => r.event === 'restart.idle-wait')).toMatchObject({ idle: true });
    await rm(idleFile, { force: true });
  });

  it('gives up waiting for idle at the maximum deferral and restarts anyway', async () => {
    const t = await setup('idle-max', { restart: { when: 'idle', idle: { url: 'http://127.0.0.1:1/idle', json: { idle: true }, interval: '50ms', maxDeferral: '600ms' } } });
    const cfg = (v: string) => {
      t.setVersion(v);
      t.lander.config.server!.restart.idle!.url = `http://127.0.0.1:${t.port}/idle`;
    };
    cfg('1.0.0');
    await t.lander.reconcile();
    cfg('1.1.0');
    await t.lander.reconcile();
    expect(t.store.state.current).toBe(2);
    const wait = t.records.find((r) => r.event === 'restart.idle-wait');
    expect(wait).toMatchObject({ idle: false });
    expect(wait.waitedMs).toBeGreaterThanOrEqual(550);
  });
});
