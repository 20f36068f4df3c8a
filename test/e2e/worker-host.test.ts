/**
 * The worker host (`src/base/worker-host.ts`): every worker `runWorker`
 * starts comes from the host thread, never from the caller's, and the host
 * relays messages both ways, a worker's error and exit, a termination, and
 * its own death, with real worker threads (`test/fixtures/echo.worker.ts`);
 * and a prewarmed worker's spare takes the next request by message.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { LanderError } from '../../src/base/errors.ts';
import { runWorker } from '../../src/base/run-worker.ts';
import { isDeno, moduleUrl } from '../../src/base/runtime.ts';
import { prewarmWorker, spawnWorker, startWorkerHost, stopWorkerHost } from '../../src/base/worker-host.ts';

const ECHO = '../fixtures/echo.worker.ts';
type Msg = { type: string; n?: number; value?: unknown; released?: boolean };

function run(mode: string, o: { value?: unknown; onUp?: () => void; signal?: AbortSignal } = {}): Promise<unknown> {
  return runWorker<Msg, unknown>({
    base: import.meta.url, module: ECHO, request: { mode, value: o.value }, what: `echo ${mode}`, name: 'echo',
    ...(o.signal ? { signal: o.signal } : {}),
    onMessage(m) {
      if (m.type === 'up') o.onUp?.();
      return m.type === 'done' ? { done: m.value } : undefined;
    },
  });
}

async function rejection(p: Promise<unknown>): Promise<LanderError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(LanderError);
  return err as LanderError;
}

afterEach(async () => { await stopWorkerHost(); });

describe('worker host', () => {
  it('relays messages both ways, in order, and a termination ends the worker with an exit', async () => {
    const w = spawnWorker(moduleUrl(import.meta.url, ECHO), { workerData: { mode: 'echo', value: { a: [1, 2] } } });
    const got: Msg[] = [];
    const done = new Promise<void>((resolve) => w.on('message', (m) => { got.push(m as Msg); if ((m as Msg).type === 'done') resolve(); }));
    for (let n = 1; n <= 5; n++) w.postMessage({ type: 'ping', n });
    w.postMessage({ type: 'finish' });
    await done;
    expect(got).toEqual([1, 2, 3, 4, 5].map((n) => ({ type: 'pong', n })).concat([{ type: 'done', value: { a: [1, 2] } } as never]));
    const exited = new Promise<number>((resolve) => w.on('exit', resolve));
    w.terminate();
    expect(typeof (await exited)).toBe('number');
  });

  it('starts no worker on the calling thread (Node: counted by wrapping the Worker class the modules import)', async () => {
    startWorkerHost();
    const wt = createRequire(import.meta.url)('node:worker_threads') as { Worker: new (...a: never[]) => unknown };
    const Original = wt.Worker;
    let here = 0;
    wt.Worker = class extends (Original as new (...a: unknown[]) => object) { constructor(...a: unknown[]) { here++; super(...a); } } as never;
    syncBuiltinESMExports();
    try {
      const { Worker } = await import('node:worker_threads');
      if (!isDeno) expect(Worker).not.toBe(Original); // the wrap reaches every module's import: the count below means something
      expect(await run('done', { value: 'x' })).toBe('x');
      const w = spawnWorker(moduleUrl(import.meta.url, ECHO), { workerData: { mode: 'echo', value: 42 } });
      const value = new Promise((resolve) => w.on('message', (m) => { if ((m as Msg).type === 'done') resolve((m as Msg).value); }));
      w.postMessage({ type: 'finish' });
      expect(await value).toBe(42);
      w.terminate();
      expect(here).toBe(0);
    } finally {
      wt.Worker = Original;
      syncBuiltinESMExports();
    }
  });

  it("rebuilds a worker's uncaught error, and reports an exit without a result with its code", async () => {
    const failed = await rejection(run('throw', { value: 'boom in the worker' }));
    expect(failed.code).toBe('ERR_WORKER_FAILED');
    expect(failed.message).toMatch(/the echo worker failed: boom in the worker/);
    const exited = await rejection(run('exit'));
    expect(exited.code).toBe('ERR_WORKER_EXIT');
    expect(exited.data).toMatchObject({ exitCode: 3 });
  });

  it('a host that dies fails the workers it ran, and the next worker starts a new host', async () => {
    let up!: () => void;
    const isUp = new Promise<void>((resolve) => { up = resolve; });
    const hung = run('hang', { onUp: up });
    await isUp;
    const failed = rejection(hung);
    await stopWorkerHost();
    const err = await failed;
    expect(err.code).toBe('ERR_WORKER_FAILED');
    expect(err.message).toMatch(/the worker host was stopped/);
    expect(await run('done', { value: 'after' })).toBe('after');
  });

  it('a prewarmed worker is started ahead, takes the next request by message, and is replaced after it exits', async () => {
    const url = moduleUrl(import.meta.url, ECHO);
    await prewarmWorker(url);
    const asked = Date.now();
    const first = (await run('who', { value: 1 })) as { spare: boolean; bootedAt: number; value: number };
    // Booted before it was asked for, and given its request later: the spare, not a new thread.
    expect(first).toMatchObject({ spare: true, value: 1 });
    expect(first.bootedAt).toBeLessThanOrEqual(asked);
    // The next spare starts once that one is gone; a prewarm call resolves when it is ready.
    await prewarmWorker(url);
    const asked2 = Date.now();
    const second = (await run('who', { value: 2 })) as { spare: boolean; bootedAt: number; value: number };
    expect(second).toMatchObject({ spare: true, value: 2 });
    expect(second.bootedAt).toBeGreaterThanOrEqual(first.bootedAt);
    expect(second.bootedAt).toBeLessThanOrEqual(asked2);
    // Messages still go both ways to a spare, and its readiness is not relayed as one of its messages.
    const w = spawnWorker(url, { workerData: { mode: 'echo', value: 'e' } });
    const got: Msg[] = [];
    const done = new Promise<void>((resolve) => w.on('message', (m) => { got.push(m as Msg); if ((m as Msg).type === 'done') resolve(); }));
    w.postMessage({ type: 'ping', n: 1 });
    w.postMessage({ type: 'finish' });
    await done;
    expect(got).toEqual([{ type: 'pong', n: 1 }, { type: 'done', value: 'e' }]);
    w.terminate();
  });

  it('a worker that was not prewarmed gets its request as workerData; a spare that cannot load settles its prewarm', async () => {
    const fresh = (await run('who', { value: 3 })) as { spare: boolean };
    expect(fresh.spare).toBe(false);
    // A module that does not exist: the prewarm resolves (nothing to wait for) and a spawn reports the failure.
    const missing = new URL('../fixtures/no-such.worker.mjs', import.meta.url);
    await prewarmWorker(missing);
    const w = spawnWorker(missing);
    const code = await new Promise<number>((resolve) => { w.on('error', () => undefined); w.on('exit', resolve); });
    expect(code).not.toBe(0);
  });
});
