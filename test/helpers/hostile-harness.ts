/**
 * One running `lander run` with the stand-in server healthy on generation 1,
 * and the steps every hostile-archive case repeats against it: publish an
 * archive as a new version, point the config at it, prove the install was
 * refused without a trace (everything under the work folder byte-identical,
 * the server's pid unchanged), then prove a good version still lands.
 *
 * Layout under `work`:
 *   root/        lander's root
 *   root-evil/   a sibling whose name starts with the root's (#22), with a sentinel
 *   outside/     where absolute and link escapes would land, with a sentinel
 *   lander.json  the config (edited by every case, so left out of snapshots)
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { ApiClient } from '../../src/cli/api-client.ts';
import { sha256Hex } from './archive.ts';
import { startDaemon, type DaemonProc } from './daemon-proc.ts';
import { startTestServer, type TestServer } from './http-server.ts';
import type { LogRecord } from './lander-cli.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from './release.ts';
import { freePort } from './free-port.ts';

export const CORE = 'voicebox-server-cuda.tar.gz';
export const SENTINEL = 'sentinel: must stay byte-identical\n';

export interface Rejection {
  /** The `install.failed` (or `generation.failed`) record. */
  record: LogRecord;
  err: { code?: string; message: string; data?: Record<string, unknown> };
  /** The newest entry of /status lastErrors. */
  lastError: { code?: string; message: string; data?: Record<string, unknown> };
}

export interface Harness {
  server: TestServer;
  work: string;
  root: string;
  outside: string;
  daemon: DaemonProc;
  /** Serves `body` (and its sidecar) as server-core (or cuda-libs) version `version`. */
  publishBody(version: string, body: Buffer, component?: 'server' | 'cuda-libs'): void;
  /** Writes the config: a core version, cuda-libs (default cu128-v1), extra top-level keys. */
  save(v: { core: string; cuda?: string }, extra?: Record<string, unknown>): Promise<void>;
  /**
   * Publishes `body` as a new core version (or takes versions the caller published), points the
   * config at it, and checks it is refused without a trace.
   */
  expectRejected(body: Buffer | { core: string; cuda: string }, want: { code: string; entry?: string; event?: string; extra?: Record<string, unknown>; allowStoreGrowth?: boolean }): Promise<Rejection>;
  /** Publishes a fresh good core and waits until it is live: the daemon still installs after a hostile case. */
  landGood(): Promise<void>;
  whoami(): Promise<{ cwd: string; pid: number }>;
  status(): Promise<Record<string, any>>;
  /** Every path under `work` (config aside) with type, mode, link count, size and content digest. */
  snapshot(): Promise<Record<string, string>>;
  close(): Promise<void>;
}

let seq = 0;

export async function startHarness(): Promise<Harness> {
  const server = await startTestServer();
  const work = await mkdtemp(path.join(os.tmpdir(), 'lander-hostile-'));
  const root = path.join(work, 'root');
  const outside = path.join(work, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await mkdir(path.join(work, 'root-evil'));
  await writeFile(path.join(outside, 'moo'), SENTINEL);
  await writeFile(path.join(work, 'root-evil', 'moo'), SENTINEL);
  const src = path.join(work, 'src');
  const coreDir = path.join(src, 'core');
  await makeCoreTree(coreDir, '1.0.0', { smallFiles: 10 });
  await publish(server, '1.0.0', CORE, coreDir);
  const cudaDir = path.join(src, 'cuda');
  await makeCudaTree(cudaDir, { libBytes: 64 * 1024, libs: 2 });
  await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', cudaDir);
  // The source trees live outside `work` once published: snapshots cover `work` only.
  await rename(src, `${work}-src`);
  const configPath = path.join(work, 'lander.json');
  const port = await freePort();

  const save = async (v: { core: string; cuda?: string }, extra: Record<string, unknown> = {}) => {
    const cfg = releaseConfig(server, root, { server: v.core, cuda: v.cuda ?? 'cu128-v1', appTag: 'libs' }, {
      download: { retries: 2, backoffInitial: '50ms', connectTimeout: '2s', idleTimeout: '2s' },
      server: {
        command: './voicebox-server-cuda',
        args: ['--port', String(port)],
        health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '15s' },
        stop: { timeout: '3s' },
      },
      ...extra,
    });
    const tmp = `${configPath}.tmp`;
    await writeFile(tmp, JSON.stringify(cfg, null, 2));
    await rename(tmp, configPath);
  };
  const publishBody = (version: string, body: Buffer, component: 'server' | 'cuda-libs' = 'server') => {
    const name = component === 'server' ? CORE : `cuda-libs-${version}.tar.gz`;
    const urlPath = component === 'server' ? `/download/v${version}/${name}` : `/download/vlibs/${name}`;
    server.serve(urlPath, body);
    server.serve(`${urlPath}.sha256`, `${sha256Hex(body)}  ${name}\n`);
  };
  // Bounded, so a stand-in that does not answer fails the step by name instead of the whole case by its timeout.
  const whoami = async () => {
    try {
      return (await (await fetch(`http://127.0.0.1:${port}/cwd`, { signal: AbortSignal.timeout(10_000) })).json()) as { cwd: string; pid: number };
    } catch (cause) {
      throw new Error(`the stand-in server on port ${port} did not answer GET /cwd: ${(cause as Error).message}`, { cause });
    }
  };
  const api = new ApiClient({ socketPath: path.join(root, 'lander.sock'), root, configPath });
  const status = async () => (await api.getJson('/status')) as Record<string, any>;
  const snapshot = () => snapshotTree(work, new Set(['lander.json', 'lander.json.tmp']));

  await save({ core: '1.0.0' });
  const daemon = startDaemon(configPath);
  await daemon.waitFor((r) => r.event === 'generation.landed' && r.generation === 1, { timeoutMs: 60_000 });

  /** Waits until nothing under `work` changes any more (server.json is written after a landing). */
  const settled = async () => {
    let prev = await snapshot();
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await snapshot();
      if (JSON.stringify(now) === JSON.stringify(prev)) return now;
      prev = now;
    }
    throw new Error('the work folder kept changing');
  };

  const h: Harness = {
    server, work, root, outside, daemon, publishBody, save, whoami, status, snapshot,
    async expectRejected(body, want) {
      let versions: { core: string; cuda?: string };
      if (Buffer.isBuffer(body)) {
        versions = { core: `h${++seq}` };
        publishBody(versions.core, body);
      } else versions = body;
      const before = await settled();
      const server0 = await whoami();
      const mark = daemon.logs().length;
      await save(versions, want.extra);
      const event = want.event ?? 'install.failed';
      const record = await daemon.waitFor((r) => r.event === event, { since: mark, timeoutMs: 60_000 });
      const err = record.err as Rejection['err'];
      expect(err.code, err.message).toBe(want.code);
      if (want.entry !== undefined) {
        expect(err.data?.entry).toBe(want.entry);
        expect(err.message).toContain(JSON.stringify(want.entry));
      }
      const st = await status();
      const lastError = st.lastErrors.at(-1).error as Rejection['err'];
      expect(lastError.code).toBe(want.code);
      if (want.entry !== undefined) expect(lastError.data?.entry).toBe(want.entry);
      // Nothing under `work` changed: sentinels, their folders, root, state.json, current, store, staging.
      const after = await snapshot();
      if (want.allowStoreGrowth) {
        const strip = (s: Record<string, string>) => Object.fromEntries(Object.entries(s).filter(([k]) => !k.startsWith('root/store/') && k !== 'root/state.json'));
        expect(strip(after)).toEqual(strip(before));
      } else {
        expect(after).toEqual(before);
      }
      expect(await readdir(path.join(root, 'staging'))).toEqual([]);
      const server1 = await whoami();
      expect(server1.pid).toBe(server0.pid);
      expect(st.server).toMatchObject({ state: 'healthy', pid: server0.pid });
      return { record, err, lastError };
    },
    async landGood() {
      const version = `good${++seq}`;
      // A fresh version each time, so this is a real download and install, not a reuse.
      const dir = path.join(`${work}-src`, version);
      await makeCoreTree(dir, version, { smallFiles: 10 });
      await publish(server, version, CORE, dir);
      const mark = daemon.logs().length;
      await save({ core: version });
      await daemon.waitFor((r) => r.event === 'generation.landed', { since: mark, timeoutMs: 60_000 });
      const me = await whoami();
      expect(await readFile(path.join(me.cwd, '_internal/VERSION'), 'utf8')).toBe(`${version}\n`);
      expect((await status()).server.state).toBe('healthy');
    },
    async close() {
      await daemon.stop('SIGTERM');
      await server.close();
      await rm(work, { recursive: true, force: true });
      await rm(`${work}-src`, { recursive: true, force: true });
    },
  };
  return h;
}

/** path → "type mode nlink size digest-or-target"; sockets by type only. */
export async function snapshotTree(dir: string, skipTop: Set<string> = new Set()): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for (const n of (await readdir(path.join(dir, rel))).sort()) {
      if (rel === '' && skipTop.has(n)) continue;
      const r = rel ? `${rel}/${n}` : n;
      const abs = path.join(dir, r);
      const st = await lstat(abs);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link -> ${await readlink(abs)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        await walk(r);
      } else if (st.isFile()) out[r] = `file ${mode} n${st.nlink} ${st.size} ${createHash('sha256').update(await readFile(abs)).digest('hex').slice(0, 16)}`;
      else out[r] = st.isSocket() ? 'socket' : 'other';
    }
  };
  await walk('');
  return out;
}

