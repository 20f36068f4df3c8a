/**
 * `npm start`: lander's main job, offline. Builds a small two-component
 * release (a server core running a stand-in GPU server, and cuda-libs) in a
 * temporary folder, serves it on 127.0.0.1, runs the lander daemon on it,
 * then publishes a new core and shows it landing with a restart. Leaves the
 * daemon running so you can look around; Ctrl-C stops it and cleans up.
 *
 * `--once` exits after the second landing (used by the test).
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Daemon } from '../daemon.ts';
import type { DaemonEvent } from '../../report/daemon-model.ts';
import { createLogger } from '../../report/log.ts';
import { packDirectory } from '../../pack/pack-dir.ts';
import { ProgressBars } from '../progress-bar.ts';
import { formatBytes } from '../../base/units.ts';
import { startStaticServer } from './static-server.ts';
import pino from 'pino';
import { freePort } from '../../base/free-port.ts';

const once = process.argv.includes('--once');
const out = process.stdout;
/** Set once stdout is a closed pipe (`npm start | head`, or `| tee` ended by Ctrl-C): the demo stops and cleans up, silently. */
let muted = false;
const say = (s: string) => {
  if (!muted) out.write(`${s}\n`);
};

/**
 * The demo's folder goes whatever happens to its stdout or when the
 * operator presses Ctrl-C, also half-way through. Stopping is ordered, so
 * nothing writes into the folder while it is removed: `halt` makes main()
 * unwind at its next step, then what it started stops (`stops`, last first:
 * the daemon and its workers, the log file, the release server), then the
 * folder goes (and, as a last resort, synchronously at exit).
 */
const halt = new AbortController();
const stops: (() => Promise<unknown>)[] = [];
let work: string | undefined;
let stopping: Promise<void> | undefined;
/** How long a stop waits for main() to reach its next step (a pack of cuda-libs in flight) before it goes on regardless. */
const UNWIND_MS = 15_000;
function stopAndClean(code: number): Promise<void> {
  stopping ??= (async () => {
    say('\nstopping: the server, the daemon, the release server; removing the demo folder');
    halt.abort();
    await Promise.race([running.catch(() => undefined), new Promise((r) => setTimeout(r, UNWIND_MS).unref())]);
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }).catch(() => undefined);
    process.exit(code);
  })();
  return stopping;
}
out.on('error', () => {
  muted = true;
  void stopAndClean(0);
});
process.on('exit', () => {
  if (work) rmSync(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
});
// Ctrl-C is how the demo is meant to end: exit 0 (npm start would otherwise report a failure).
process.once('SIGINT', () => void stopAndClean(0));
process.once('SIGTERM', () => void stopAndClean(0));
/** main()'s checkpoint between steps: once stopping, it unwinds here (its error is expected and not reported). */
const going = () => halt.signal.throwIfAborted();

/** The repo's stand-in GPU server (plain JS), found from this module in src/ or dist/src/. */
function standInPath(): string {
  const here = fileURLToPath(import.meta.url);
  const repo = here.includes(`${path.sep}dist${path.sep}`) ? here.slice(0, here.lastIndexOf(`${path.sep}dist${path.sep}`)) : path.resolve(path.dirname(here), '../../..');
  return path.join(repo, 'test/fixtures/stand-in-server.mjs');
}


async function makeCore(dir: string, version: string): Promise<void> {
  await mkdir(path.join(dir, '_internal/voicebox'), { recursive: true });
  await writeFile(path.join(dir, 'voicebox-server-cuda'), '#!/bin/sh\nexec node "$(dirname "$0")/_internal/server.mjs" "$@"\n');
  await chmod(path.join(dir, 'voicebox-server-cuda'), 0o755);
  await copyFile(standInPath(), path.join(dir, '_internal/server.mjs'));
  await writeFile(path.join(dir, '_internal/VERSION'), `${version}\n`);
  for (let i = 0; i < 300; i++, going()) await writeFile(path.join(dir, `_internal/voicebox/mod${i}.py`), `# voicebox ${version} module ${i}\n`.repeat(20));
}

async function makeCudaLibs(dir: string): Promise<void> {
  const lib = path.join(dir, '_internal/nvidia/cublas/lib');
  await mkdir(lib, { recursive: true });
  for (const [name, mib] of [['libcublasLt.so.12', 24], ['libcublas.so.12', 8], ['libcudart.so.12', 2]] as const) {
    // Half random, half zeros: roughly the compressibility of real CUDA libraries.
    going();
    const half = randomBytes((mib * 1024 * 1024) / 2);
    await writeFile(path.join(lib, name), Buffer.concat([half, Buffer.alloc(half.length)]));
  }
  await symlink('libcudart.so.12', path.join(lib, 'libcudart.so'));
}

async function publish(releases: string, tag: string, name: string, src: string): Promise<void> {
  const dir = path.join(releases, `v${tag}`);
  await mkdir(dir, { recursive: true });
  const r = await packDirectory(src, path.join(dir, name), { level: 1, signal: halt.signal });
  await writeFile(path.join(dir, `${name}.sha256`), `${r.sha256}  ${name}\n`);
  say(`  published ${name} (${formatBytes(r.size)}, sha256 ${r.sha256.slice(0, 12)}…)`);
}

async function main(): Promise<void> {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-demo-'));
  const releases = path.join(work, 'releases');
  const root = path.join(work, 'root');
  const configPath = path.join(work, 'lander.json');
  const logFile = path.join(work, 'lander.log');
  say(`lander demo in ${work}\n`);
  say('1. Building a release: a server core 1.0.0 and cuda-libs cu128-v1');
  await makeCore(path.join(work, 'src/core-1.0.0'), '1.0.0');
  await makeCudaLibs(path.join(work, 'src/cuda-libs'));
  await publish(releases, '1.0.0', 'voicebox-server-cuda.tar.gz', path.join(work, 'src/core-1.0.0'));
  await publish(releases, '1.0.0', 'cuda-libs-cu128-v1.tar.gz', path.join(work, 'src/cuda-libs'));
  // Throttled, so the progress of the one pass (download, hash, extract) can be watched.
  const server = await startStaticServer(releases, { bytesPerSecond: 12 * 1024 * 1024 });
  stops.push(() => server.close());
  going();
  const port = await freePort();
  const writeConfig = async (core: string) => {
    going();
    const config = {
      root,
      components: {
        server: { version: core, url: `${server.origin}/v{version}/voicebox-server-cuda.tar.gz`, sha256Url: '{url}.sha256', restart: true },
        'cuda-libs': { version: 'cu128-v1', url: `${server.origin}/v1.0.0/cuda-libs-{version}.tar.gz`, sha256Url: '{url}.sha256', restart: true },
      },
      server: {
        command: './voicebox-server-cuda',
        args: ['--port', String(port), '--start-delay-ms', '400'],
        health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, timeout: '30s' },
      },
    };
    await writeFile(`${configPath}.tmp`, JSON.stringify(config, null, 2) + '\n');
    await rename(`${configPath}.tmp`, configPath);
  };
  await writeConfig('1.0.0');
  say(`  serving ${releases} on ${server.origin}\n`);

  say('2. Starting the lander daemon (JSON logs go to lander.log)');
  // No `mkdir`: sonic-boom's asynchronous mkdir, in flight during a stop, would make the folder again after it is removed.
  const logDest = pino.destination({ dest: logFile, sync: false });
  stops.push(() => new Promise((r) => (logDest.once('close', r).once('error', r), logDest.end())));
  const log = createLogger({ level: 'info', destination: logDest });
  const daemon = await Daemon.start({ configPath, log });
  stops.push(() => daemon.stop());
  going();
  const bars = out.isTTY ? new ProgressBars(out) : undefined;
  const lastLine = new Map<string, number>();
  const landed: ((e: Extract<DaemonEvent, { type: 'landed' }>) => void)[] = [];
  daemon.subscribe((e) => {
    if (e.type === 'progress') {
      if (bars) bars.update(e.component, { label: e.component, bytes: e.bytes, rate: e.rate, ...(e.total ? { total: e.total } : {}) });
      else if (performance.now() - (lastLine.get(e.component) ?? 0) > 1000) {
        lastLine.set(e.component, performance.now());
        say(`  ${e.component}: ${formatBytes(e.bytes)}${e.total ? ` of ${formatBytes(e.total)}` : ''}`);
      }
    } else {
      const line = describe(e);
      if (line) (bars ? bars.print(line) : say(line));
      if (e.type === 'install') bars?.remove(e.component);
      if (e.type === 'landed') landed.splice(0).forEach((f) => f(e));
    }
  });
  const nextLanding = () => {
    const p = new Promise<Extract<DaemonEvent, { type: 'landed' }>>((resolve, reject) => {
      landed.push(resolve);
      if (halt.signal.aborted) reject(halt.signal.reason);
      else halt.signal.addEventListener('abort', () => reject(halt.signal.reason), { once: true });
    });
    p.catch(() => undefined); // awaited later; a stop before that is not an unhandled rejection
    return p;
  };
  const first = await nextLanding();
  const pid1 = daemon.status().server.pid;
  say(`\n  generation ${first.generation} is live; the server (pid ${pid1}) is healthy on port ${port}\n`);

  say('3. Publishing server core 1.1.0 and bumping the version in lander.json');
  await makeCore(path.join(work, 'src/core-1.1.0'), '1.1.0');
  await publish(releases, '1.1.0', 'voicebox-server-cuda.tar.gz', path.join(work, 'src/core-1.1.0'));
  const second = nextLanding();
  await writeConfig('1.1.0');
  const g2 = await second;
  const st = daemon.status();
  say(`\n  generation ${g2.generation} is live: only the core was downloaded; the server restarted (pid ${pid1} -> ${st.server.pid}) in ${Math.round(g2.durationMs)} ms`);
  say(`  generations kept for rollback: ${st.generations.map((g) => `${g.id} (server ${g.components.server})`).join(', ')}\n`);

  say('4. Where to look:');
  say(`  node bin/lander.js status --config ${configPath}`);
  say(`  node bin/lander.js status --watch --config ${configPath}`);
  say(`  node bin/lander.js rollback --config ${configPath}`);
  say(`  tail -f ${logFile}`);
  say(`  ls -l ${root} ${root}/current/`);

  if (once) return;
  say('\nThe daemon keeps running; edit lander.json to try more. Ctrl-C to stop and clean up.');
}

function describe(e: DaemonEvent): string | undefined {
  switch (e.type) {
    case 'install':
      return `  ${e.component} ${e.version}: ${e.status}${e.error ? ` (${e.error})` : ''}`;
    case 'server.state':
      return `  server: ${e.from} -> ${e.to}${e.pid ? ` (pid ${e.pid}${e.generation !== undefined ? `, generation ${e.generation}` : ''})` : ''}`;
    case 'landed':
      return `  landed generation ${e.generation}${e.from !== null ? ` (was ${e.from})` : ''}`;
    case 'rollback':
      return `  ROLLBACK from generation ${e.from} to ${e.to}: ${e.reason}`;
    case 'config':
      return e.status === 'invalid' ? `  config rejected: ${e.issues?.map((i) => `${i.path}: ${i.message}`).join('; ')}` : '  config loaded';
    default:
      return undefined;
  }
}

const running = main();
running.then(
  () => (once ? stopAndClean(0) : undefined),
  (err) => {
    // Once stopping (a closed stdout, Ctrl-C), main() unwinds on purpose: its error is expected.
    if (stopping) return;
    process.stderr.write(`demo failed: ${(err as Error).stack ?? err}\n`);
    void stopAndClean(1);
  },
);
