/**
 * Throughput rows (issue 15), side by side in one run, interleaved:
 * - a capped link: nginx `limit_rate 10m` per connection, as release CDNs
 *   cap each connection: lander's install (default settings: 8 connections)
 *   vs `aria2c -x8 -s8` downloading alone vs the three-pass baseline;
 * - loopback: lander vs `curl | pigz -dc | tar -x` vs the three-pass
 *   baseline, on one single-member archive; beside them the pipeline
 *   followed by `sync -f` (durable at the end, as lander's tree is) and
 *   lander with no flush at all (neither durable), to price durability;
 *   and the disk's floor for a durable install (`dd` of the unpacked bytes
 *   with `conv=fdatasync`): on a disk slower than the pipeline, no durable
 *   install beats it.
 *
 * `node dist/bench/throughput.js` runs it alone. BENCH_CAPPED_MB (default
 * 44, the 43.8 MB archive) and BENCH_SCALE (loopback, MB, default
 * 1024); BENCH_REPS (default 3).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, type Fixture } from './fixture.ts';
import { interleave, inUse, runOnce, wall, WORK, rssMiB, type RunResult, type Variant } from './install.ts';
import { serveDir, type Served } from './serve.ts';
import { startThrottle } from './conn-throttle.ts';
import { median, pairedRatio, ratioText, summary } from './stats.ts';

export const CAPPED_RATE = '10m';
/** The strict row's cap per TCP connection, bytes/s (nginx's 10m is 10 MiB/s). */
export const STRICT_RATE = 10 * 1024 * 1024;

export interface ThroughputResult {
  capped?: { fx: Fixture; runs: Map<Variant, RunResult[]> };
  /** The same, behind a strict per-connection token bucket (conn-throttle.ts). */
  strict?: { fx: Fixture; runs: Map<Variant, RunResult[]> };
  loopback: { fx: Fixture | undefined; runs: Map<Variant, RunResult[]> };
}

export async function throughputBench(srv: Served, capped: Fixture | undefined, loop: Fixture | undefined, reps: number): Promise<ThroughputResult> {
  const out: ThroughputResult = { loopback: { fx: loop, runs: new Map() } };
  if (capped && srv.slowUrl) {
    const url = srv.slowUrl(capped.file, CAPPED_RATE);
    process.stderr.write(`capped link: nginx limit_rate ${CAPPED_RATE} per connection, ${(capped.bytes / 1e6).toFixed(1)} MB\n`);
    out.capped = { fx: capped, runs: await interleave(['lander', 'lander-cold', 'aria2', 'three-pass'], reps, (v, rep) => runOnce(v, capped, url, `cap-${v}-${rep}`)) };
    const plain = new URL(srv.url(capped.file));
    const throttle = await startThrottle(Number(plain.port), STRICT_RATE);
    try {
      plain.port = String(throttle.port);
      process.stderr.write(`capped link, strict: ${STRICT_RATE / 1e6} MB/s per TCP connection (token bucket), ${(capped.bytes / 1e6).toFixed(1)} MB\n`);
      out.strict = { fx: capped, runs: await interleave(['lander', 'lander-cold', 'aria2'], reps, (v, rep) => runOnce(v, capped, plain.href, `strict-${v}-${rep}`)) };
    } finally {
      await throttle.close();
    }
  }
  if (!loop) return out;
  process.stderr.write(`loopback: ${(loop.bytes / 1e6).toFixed(0)} MB single-member archive\n`);
  out.loopback.runs = await interleave(['lander', 'lander-cold', 'shell-pigz', 'three-pass', 'shell-pigz-sync', 'lander-no-flush', 'disk-floor'], reps, (v, rep) => runOnce(v, loop, srv.url(loop.file), `loop-${v}-${rep}`));
  return out;
}

/**
 * Markdown rows: what, lander, baseline, ratio, target, verdict. Each target row twice: lander as the
 * daemon runs an install (`lander`, `inUse`: request → tree, its worker host and spare install worker
 * up; the three-pass loop's call → tree, its modules loaded; a shell pipeline's whole run), and lander
 * in a one-shot process with no spare (`lander-cold`, `wall`: spawn → exit, node's start, the modules
 * and every worker thread's start included; the baseline's spawn → exit too).
 */
export function throughputRows(r: ThroughputResult): string[][] {
  const yes = (ok: boolean) => (ok ? '**met**' : '**missed**');
  const s2 = (xs: number[]) => summary(xs, 2);
  const rows: string[][] = [];
  const both = (what: string, runs: Map<Variant, RunResult[]>, baseVariant: Variant, baseName: string, max: number) => {
    const base = runs.get(baseVariant)!;
    const ways = [['in a running daemon (request → tree)', runs.get('lander')!, inUse], ['one-shot process, no spare (spawn → exit)', runs.get('lander-cold')!, wall]] as const;
    for (const [how, lander, f] of ways) {
      const q = pairedRatio(f(lander), f(base));
      rows.push([`${what}, ${how}: install wall time, s`, s2(f(lander)), `${baseName} ${s2(f(base))}`, ratioText(q), `≤ ${max.toFixed(2)}×`, yes(q.median <= max)]);
    }
  };
  if (r.capped) {
    const m = r.capped.runs;
    const mb = (r.capped.fx.bytes / 1e6).toFixed(1);
    both(`capped link (nginx limit_rate ${CAPPED_RATE} per connection), ${mb} MB`, m, 'aria2', 'aria2c -x8 -s8 download only', 1.5);
    both(`capped link, ${mb} MB`, m, 'three-pass', 'three-pass', 0.25);
    const lr = m.get('lander')!;
    const p99 = median(lr.map((x) => x.eld!.p99));
    if (r.strict) {
      const sm = r.strict.runs;
      both(`capped link, strict (10 MiB/s per TCP connection, however many requests), ${mb} MB`, sm, 'aria2', 'aria2c -x8 -s8 download only', 1.5);
    }
    rows.push([`capped link, 8 connections: main-thread event-loop delay p99, ms; peak RSS, MiB`, `${p99.toFixed(1)}; ${summary(rssMiB(lr))}`, '', '—', 'p99 < 5; RSS < 150', yes(p99 < 5 && Math.max(...rssMiB(lr)) < 150)]);
  }
  const m = r.loopback.runs;
  if (!r.loopback.fx || !m.size) return rows;
  const L = m.get('lander')!;
  const mb = (r.loopback.fx.bytes / 1e6).toFixed(0);
  both(`loopback, ${mb} MB single member`, m, 'shell-pigz', 'curl \\| pigz -dc \\| tar -x', 1);
  both(`loopback, ${mb} MB`, m, 'three-pass', 'three-pass', 0.8);
  // Not the lines: the pipeline ends with its tree in the page cache, lander's ends durable (fsynced).
  const d = pairedRatio(inUse(L), inUse(m.get('shell-pigz-sync')!));
  const nf = inUse(m.get('lander-no-flush')!);
  const v = pairedRatio(nf, inUse(m.get('shell-pigz')!));
  rows.push([`loopback, ${mb} MB, both durable at the end, in a running process: install wall time, s`, s2(inUse(L)), `curl \\| pigz -dc \\| tar -x && sync -f ${s2(inUse(m.get('shell-pigz-sync')!))}`, ratioText(d), '—', '']);
  rows.push([`loopback, ${mb} MB, neither durable, in a running process: install wall time, s`, `flush none ${s2(nf)}`, `curl \\| pigz -dc \\| tar -x ${s2(inUse(m.get('shell-pigz')!))}`, ratioText(v), '—', '']);
  rows.push([`loopback, ${mb} MB, neither durable, in a running process: install wall time, s`, `flush none ${s2(nf)}`, `three-pass ${s2(inUse(m.get('three-pass')!))}`, ratioText(pairedRatio(nf, inUse(m.get('three-pass')!))), '—', '']);
  // What no durable install of this tree can beat on this disk: its bytes written once and flushed.
  const floor = inUse(m.get('disk-floor')!);
  const unpacked = (r.loopback.fx.uncompressedBytes / 1e6).toFixed(0);
  rows.push([`loopback, ${mb} MB, durable: install wall time ÷ the disk's floor (dd ${unpacked} MB of zeros, conv=fdatasync), s`, s2(inUse(L)), `dd ${s2(floor)}`, ratioText(pairedRatio(inUse(L), floor)), '—', '']);
  const cpu = (rs: RunResult[]) => rs.map((x) => (x.cpuMs ?? NaN) / 1000);
  rows.push([`loopback, ${mb} MB: CPU (user+sys), s`, s2(cpu(L)), `pigz pipeline ${s2(cpu(m.get('shell-pigz')!))}; three-pass ${s2(cpu(m.get('three-pass')!))}`, '—', '—', '']);
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const reps = Number(process.env.BENCH_REPS ?? 3);
  const capped = await fixture('cuda-libs', Number(process.env.BENCH_CAPPED_MB ?? 44));
  // BENCH_ONLY=capped or loopback runs one row.
  const only = process.env.BENCH_ONLY;
  const loop = only === 'capped' ? undefined : await fixture('cuda-libs', Number(process.env.BENCH_SCALE ?? 1024));
  const srv = await serveDir(path.dirname(capped.file), WORK, [CAPPED_RATE]);
  try {
    const res = await throughputBench(srv, only === 'loopback' ? undefined : capped, loop, reps);
    for (const row of throughputRows(res)) console.log(`| ${row.join(' | ')} |`);
  } finally {
    await srv.close();
  }
}
