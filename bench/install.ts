/**
 * Install benchmark: lander's one-pass worker install of the cuda-libs
 * archive against a three-pass install in the same runtime, the same pass on
 * the main thread, and shell pipelines (curl | tee >(openssl) | pigz | tar;
 * curl | tar -xz), all from the same local HTTP server, interleaved, each
 * run in its own fresh process and folder.
 *
 * `node dist/bench/install.js` runs it alone at BENCH_SCALE (MB, default 1024).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, OUT, type Fixture } from './fixture.ts';
import type { ChildResult } from './install-child.ts';
import type { Job, NodeVariant } from './install-job.ts';
import { serveDir } from './serve.ts';
import { pairedRatio, ratioText, summary } from './stats.ts';

/** `lander-cold`: lander in a one-shot process, no spare worker (every thread starts in its span). */
export type Variant = NodeVariant | ShellVariant | 'lander-no-flush' | 'lander-cold';
type ShellVariant = 'shell-verify' | 'shell-plain' | 'shell-pigz' | 'shell-pigz-sync' | 'aria2' | 'disk-floor';

export interface RunResult {
  variant: Variant;
  /** Spawn to exit, seen from this process: the same clock for every variant. */
  wallMs: number;
  /** Peak RSS, KiB: the node process's own, or the sum over the shell pipeline's processes. */
  rssKiB: number | undefined;
  /** User + system CPU, ms, summed over the processes. */
  cpuMs: number | undefined;
  innerMs?: number;
  eld?: ChildResult['eld'];
  /** Event-loop delay of an idle control process running beside this one: the machine's share of `eld`. */
  controlEld?: ChildResult['eld'];
}

const TIME = '/usr/bin/time';
const CHILD = fileURLToPath(new URL('./install-child.js', import.meta.url));
const CONTROL = fileURLToPath(new URL('./eld-control.js', import.meta.url));

/** Starts the idle control process; the returned function stops it and gives its delays. */
async function startControl(): Promise<() => Promise<ChildResult['eld']>> {
  const child = spawn(process.execPath, [CONTROL], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => { out += c; if (out.includes('ready\n')) resolve(); });
    child.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return async () => {
    child.kill('SIGTERM');
    await closed;
    return JSON.parse(out.split('\n').filter(Boolean).pop()!) as ChildResult['eld'];
  };
}
export const WORK = path.join(OUT, 'work');

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c; });
    child.stderr.on('data', (c: Buffer) => { stderr += c; });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
  });
}

// The bare pipeline a user would type: no digest, gzip on pigz's threads.
const PIGZ_PIPELINE = 'set -o pipefail; $T curl -sf "$URL" | $T pigz -dc | $T tar -x -C "$DIR"';

const SHELL: Record<ShellVariant, string> = {
  'shell-verify': 'set -o pipefail; $T curl -sf "$URL" | $T tee >($T openssl dgst -sha256 -r > "$SUM") | $T pigz -dc | $T tar -x -C "$DIR"; rc=$?; wait $!; exit $rc',
  'shell-plain': 'set -o pipefail; $T curl -sf "$URL" | $T tar -xz -C "$DIR"',
  'shell-pigz': PIGZ_PIPELINE,
  // The same, durable when it ends as lander's tree is (syncfs(2) of the folder's file system).
  'shell-pigz-sync': `${PIGZ_PIPELINE} && $T sync -f "$DIR"`,
  // Download only, 8 connections, 8 splits: the multi-connection tool a user reaches for.
  // The disk's floor for a durable install: the archive's unpacked bytes written to one file and fdatasync'd.
  'disk-floor': '$T dd if=/dev/zero of="$DIR/floor" bs=1M count="$MB" conv=fdatasync status=none',
  'aria2': '$T aria2c -q -x8 -s8 -k1M --file-allocation=none --allow-overwrite=true -d "$DIR" -o archive.tar.gz "$URL"',
};
const isShell = (v: Variant): v is ShellVariant => v in SHELL;

/** One install of `fx` by `variant` into a fresh folder; removes it and syncs afterwards (untimed). */
export async function runOnce(variant: Variant, fx: Fixture, url: string, tag: string): Promise<RunResult> {
  const dir = path.join(WORK, `x-${tag}`);
  const scratch = path.join(WORK, `scratch-${tag}`);
  const rssFile = path.join(WORK, `rss-${tag}`);
  const sumFile = path.join(WORK, `sum-${tag}`);
  await mkdir(WORK, { recursive: true });
  try {
    if (isShell(variant)) {
      await mkdir(dir);
      const T = existsSync(TIME) ? `${TIME} -f %M,%U,%S -a -o ${rssFile}` : '';
      const r = await run('bash', ['-c', SHELL[variant]], { T, URL: url, DIR: dir, SUM: sumFile, MB: String(Math.ceil(fx.uncompressedBytes / 2 ** 20)) });
      if (r.code !== 0) throw new Error(`${variant} failed (${r.code}): ${r.stderr}`);
      if (variant === 'shell-verify') {
        const sum = (await readFile(sumFile, 'utf8')).split(' ')[0];
        if (sum !== fx.sha256) throw new Error(`${variant}: digest ${sum}, expected ${fx.sha256}`);
      }
      const rows = T ? (await readFile(rssFile, 'utf8')).split('\n').filter(Boolean).map((l) => l.split(',').map(Number)) : undefined;
      const rssKiB = rows?.reduce((a, [m]) => a + m!, 0);
      const cpuMs = rows?.reduce((a, [, u, s]) => a + (u! + s!) * 1000, 0);
      return { variant, wallMs: r.ms, rssKiB, cpuMs };
    }
    // lander-no-flush: lander's install with no fsync at all (flush 'none'), to price durability.
    const base = { url, sha256: fx.sha256, dir, scratch };
    const job: Job = variant === 'lander-no-flush' ? { variant: 'lander', flush: 'none', ...base } : variant === 'lander-cold' ? { variant: 'lander', spare: false, ...base } : { variant, ...base };
    const stopControl = job.variant === 'lander' || job.variant === 'main-thread' ? await startControl() : undefined;
    const r = await run(process.execPath, [CHILD, JSON.stringify(job)]);
    const controlEld = await stopControl?.();
    if (r.code !== 0) throw new Error(`${variant} failed (${r.code}): ${r.stderr}`);
    const c = JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
    if (variant !== 'idle' && c.bytes !== fx.bytes) throw new Error(`${variant}: ${c.bytes} bytes, expected ${fx.bytes}`);
    return { variant, wallMs: r.ms, cpuMs: c.cpuMs, innerMs: c.innerMs, rssKiB: c.maxRssKiB, eld: c.eld, controlEld };
  } finally {
    for (const p of [dir, scratch, `${scratch}.json`, rssFile, sumFile]) await rm(p, { recursive: true, force: true });
    spawnSync('sync');
  }
}

/**
 * Runs every variant `reps` times, interleaved (A B C, B C A, ...), so
 * drift from other load on the machine spreads over all of them.
 */
export async function interleave(variants: readonly Variant[], reps: number, once: (v: Variant, rep: number) => Promise<RunResult>): Promise<Map<Variant, RunResult[]>> {
  const out = new Map<Variant, RunResult[]>(variants.map((v) => [v, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + rep) % variants.length]!;
      const r = await once(v, rep);
      out.get(v)!.push(r);
      process.stderr.write(`  ${v} #${rep + 1}: ${(r.wallMs / 1000).toFixed(2)} s, ${r.rssKiB === undefined ? '?' : (r.rssKiB / 1024).toFixed(0)} MiB, cpu ${r.cpuMs === undefined ? '?' : (r.cpuMs / 1000).toFixed(2)} s${r.eld ? `, eld p99 ${r.eld.p99.toFixed(1)} max ${r.eld.max.toFixed(1)} ms` : ''}${r.controlEld ? ` (idle control beside it: p99 ${r.controlEld.p99.toFixed(1)} max ${r.controlEld.max.toFixed(1)} ms)` : ''}\n`);
    }
  }
  return out;
}

export const INSTALL_VARIANTS: Variant[] = ['lander', 'three-pass', 'shell-verify', 'shell-plain', 'main-thread', 'idle'];

export async function installBench(fx: Fixture, url: string, reps: number, variants = INSTALL_VARIANTS): Promise<Map<Variant, RunResult[]>> {
  return interleave(variants, reps, (v, rep) => runOnce(v, fx, url, `${v}-${rep}`));
}

/** Lander only, at two archive sizes, interleaved: peak RSS should not depend on size. */
export async function rssFlatBench(small: Fixture, smallUrl: string, large: Fixture, largeUrl: string, reps: number): Promise<{ small: RunResult[]; large: RunResult[] }> {
  const small_: RunResult[] = [];
  const large_: RunResult[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 ? [true, false] : [false, true];
    for (const isLarge of order) {
      const r = await runOnce('lander', isLarge ? large : small, isLarge ? largeUrl : smallUrl, `rss-${isLarge ? 'L' : 'S'}-${rep}`);
      (isLarge ? large_ : small_).push(r);
      process.stderr.write(`  lander ${isLarge ? 'large' : 'small'} #${rep + 1}: ${(r.wallMs / 1000).toFixed(2)} s, ${((r.rssKiB ?? 0) / 1024).toFixed(0)} MiB\n`);
    }
  }
  return { small: small_, large: large_ };
}

export const wall = (rs: RunResult[]) => rs.map((r) => r.wallMs / 1000);
/**
 * The install as a running process sees it, s: a node variant's span inside its process (modules
 * loaded, lander's worker host and spare install worker up, as in the daemon), a shell pipeline's
 * spawn to exit (the command is the whole of it).
 */
export const inUse = (rs: RunResult[]) => rs.map((r) => (r.innerMs ?? r.wallMs) / 1000);
export const rssMiB = (rs: RunResult[]) => rs.map((r) => (r.rssKiB ?? NaN) / 1024);

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const mb = Number(process.env.BENCH_SCALE ?? 1024);
  const reps = Number(process.env.BENCH_REPS ?? 3);
  const fx = await fixture('cuda-libs', mb);
  const srv = await serveDir(path.dirname(fx.file), WORK);
  try {
    // BENCH_VARIANTS=lander,shell-plain runs just those, side by side.
    const only = process.env.BENCH_VARIANTS?.split(',').filter(Boolean) as Variant[] | undefined;
    const res = await installBench(fx, srv.url(fx.file), reps, only?.length ? only : INSTALL_VARIANTS);
    const l = res.get('lander')!;
    for (const [v, rs] of res) {
      console.log(`${v}: wall ${summary(wall(rs), 2)} s, rss ${summary(rssMiB(rs))} MiB, lander/this ${ratioText(pairedRatio(wall(l), wall(rs)))}`);
    }
  } finally {
    await srv.close();
  }
}
