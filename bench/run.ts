/**
 * `npm run bench`: every benchmark, one markdown table of figures and
 * ratios, printed and written to bench/out/latest.md.
 *
 * Environment:
 * - BENCH_SCALE  size of the cuda-libs archive in MB (default 1024; 50 for a smoke run);
 * - BENCH_REPS   interleaved repetitions per install variant (default 3);
 * - BENCH_RATES  nginx limit_rate values for the "real network" rows (default 100m,250m: MiB/s);
 * - BENCH_SERVER=node  use the node static server even when nginx is installed.
 *
 * Timings on a shared machine are not absolute claims: every figure sits
 * beside a baseline measured in the same run, interleaved, and the ratios
 * are medians of per-repetition ratios with their range.
 */
import { cpus, loadavg } from 'node:os';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fixture, OUT } from './fixture.ts';
import { generationBench } from './generation.ts';
import { installBench, interleave, rssFlatBench, rssMiB, runOnce, wall, WORK, type RunResult, type Variant } from './install.ts';
import { restartBench } from './restart.ts';
import { serveDir } from './serve.ts';
import { CAPPED_RATE, throughputBench, throughputRows, type ThroughputResult } from './throughput.ts';
import { median, pairedRatio, ratioText, summary } from './stats.ts';

const scale = Number(process.env.BENCH_SCALE ?? 1024);
const reps = Number(process.env.BENCH_REPS ?? 3);
const rates = (process.env.BENCH_RATES ?? '100m,250m').split(',').filter(Boolean);
const t0 = performance.now();
const load0 = loadavg();
const log = (s: string) => process.stderr.write(`${s}\n`);

log(`fixtures (cuda-libs ${scale} MB and ${Math.round(scale / 4)} MB; generated once, then cached)`);
const large = await fixture('cuda-libs', scale);
const small = await fixture('cuda-libs', Math.round(scale / 4));
const capped = await fixture('cuda-libs', Number(process.env.BENCH_CAPPED_MB ?? 44));
const srv = await serveDir(path.dirname(large.file), WORK, [...new Set([...rates, CAPPED_RATE])]);
log(`serving with ${srv.kind} at ${srv.origin}`);

let install: Map<Variant, RunResult[]>;
let flat: Awaited<ReturnType<typeof rssFlatBench>>;
const slow = new Map<string, Map<Variant, RunResult[]>>();
let throughput: ThroughputResult;
try {
  log('throughput: capped link and loopback (issue 15)');
  throughput = await throughputBench(srv, capped, large, reps);
  log(`install, ${reps} interleaved repetitions`);
  install = await installBench(large, srv.url(large.file), reps);
  log('peak RSS at two sizes (lander)');
  flat = await rssFlatBench(small, srv.url(small.file), large, srv.url(large.file), reps);
  for (const rate of srv.slowUrl ? rates : []) {
    log(`through nginx limit_rate ${rate}, ${small.bytes >> 20} MiB archive`);
    const url = srv.slowUrl!(small.file, rate);
    slow.set(rate, await interleave(['lander', 'three-pass'], reps, (v, rep) => runOnce(v, small, url, `slow-${v}-${rep}`)));
  }
} finally {
  await srv.close();
}
log('generation of 10,000 files');
const gen = await generationBench(10_000, 5);
log('restart with the stand-in server');
const rs = await restartBench(10);

const get = (v: Variant) => install.get(v)!;
const L = get('lander');
const mib = (n: number) => (n / 2 ** 20).toFixed(0);
const s2 = (xs: number[]) => summary(xs, 2);
const cpu = (r: RunResult[]) => r.map((x) => (x.cpuMs ?? NaN) / 1000);
const yes = (ok: boolean) => (ok ? '**met**' : '**missed**');
const eld = (r: RunResult[], k: 'p50' | 'p99' | 'max') => r.map((x) => x.eld![k]);
const ctl = (r: RunResult[], k: 'p50' | 'p99' | 'max') => r.map((x) => x.controlEld![k]);
const eldText = (r: RunResult[], f: typeof eld) => `${median(f(r, 'p50')).toFixed(1)} / ${median(f(r, 'p99')).toFixed(1)} / ${worst(f(r, 'max')).toFixed(1)}`;
const worst = (xs: number[]) => Math.max(...xs);

const rTP = pairedRatio(wall(L), wall(get('three-pass')));
const rSV = pairedRatio(wall(L), wall(get('shell-verify')));
const rSP = pairedRatio(wall(L), wall(get('shell-plain')));
const rMT = pairedRatio(wall(L), wall(get('main-thread')));
const landerRss = rssMiB(L);
const flatRatio = pairedRatio(rssMiB(flat.large), rssMiB(flat.small));
const lp99 = median(eld(L, 'p99'));
const lmax = worst(eld(L, 'max'));

const rows: string[][] = [
  ['what', 'lander', 'baseline', 'lander ÷ baseline', 'target', ''],
  ['install wall time, s', s2(wall(L)), `three-pass ${s2(wall(get('three-pass')))}`, ratioText(rTP), '≤ 0.70×', yes(rTP.median <= 0.7)],
  ['install wall time, s', s2(wall(L)), `curl \\| tee >(openssl) \\| pigz -dc \\| tar ${s2(wall(get('shell-verify')))}`, ratioText(rSV), '≤ 1.00×', yes(rSV.median <= 1)],
  ['install wall time, s', s2(wall(L)), `curl \\| tar -xz (no verify) ${s2(wall(get('shell-plain')))}`, ratioText(rSP), '—', ''],
  ['install wall time, s', s2(wall(L)), `same pipeline on the main thread ${s2(wall(get('main-thread')))}`, ratioText(rMT), '—', ''],
  ['install CPU (user+sys, all threads), s', s2(cpu(L)), `three-pass ${s2(cpu(get('three-pass')))}; shell verify ${s2(cpu(get('shell-verify')))}`, `${ratioText(pairedRatio(cpu(L), cpu(get('three-pass'))))}; ${ratioText(pairedRatio(cpu(L), cpu(get('shell-verify'))))}`, '—', ''],
  ...[...slow].map(([rate, m]) => {
    const r = pairedRatio(wall(m.get('lander')!), wall(m.get('three-pass')!));
    return [`install wall time through nginx limit_rate ${rate} (a network link), ${mib(small.bytes)} MiB, s`, s2(wall(m.get('lander')!)), `three-pass ${s2(wall(m.get('three-pass')!))}`, ratioText(r), '≤ 0.70×', yes(r.median <= 0.7)];
  }),
  ...throughputRows(throughput),
  ['main-thread event-loop delay p50 / p99 / max, ms (beyond the 10 ms resolution; max = worst run)', eldText(L, eld), `pipeline on the main thread: ${eldText(get('main-thread'), eld)}; an idle control process beside lander: ${eldText(L, ctl)}, beside main-thread: ${eldText(get('main-thread'), ctl)}`, '—', 'p99 < 10, max < 50', yes(lp99 < 10 && lmax < 50)],
  ['peak RSS, MiB (maxRSS of a fresh process)', summary(landerRss), `three-pass ${summary(rssMiB(get('three-pass')))}; main-thread ${summary(rssMiB(get('main-thread')))}; idle node ${summary(rssMiB(get('idle')))}; shell verify (sum of its processes) ${summary(rssMiB(get('shell-verify')))}`, '—', '< 150', yes(Math.max(...landerRss) < 150)],
  [`peak RSS at ${mib(large.bytes)} vs ${mib(small.bytes)} MiB archives, MiB`, summary(rssMiB(flat.large)), `lander at ${mib(small.bytes)} MiB: ${summary(rssMiB(flat.small))}`, ratioText(flatRatio), 'flat (≤ 1.10×)', yes(flatRatio.median <= 1.1)],
  [`generation of ${gen.files} files, s`, summary(gen.lander, 3), `cp -al ${summary(gen.cp, 3)}`, ratioText(pairedRatio(gen.lander, gen.cp)), '< 1 s', yes(median(gen.lander) < 1)],
  ['restart: swap + restartOn, ms', summary(rs.total, 1), `stand-in's own ready_ms ${summary(rs.readyMs, 1)}`, `${(median(rs.total) / median(rs.readyMs)).toFixed(2)}× (lander's share ≈ ${(median(rs.total) - median(rs.readyMs)).toFixed(1)} ms)`, '—', ''],
  ['restart parts, ms', `swap ${summary(rs.swap, 1)}; stop ${summary(rs.stop, 1)}; start→healthy ${summary(rs.startToHealthy, 1)}`, '', '', '', ''],
];

const load1 = loadavg();
const md = [
  `# lander bench — ${new Date().toISOString()}`,
  '',
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; node ${process.version}; ${process.platform}; load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}, at end ${load1.map((x) => x.toFixed(2)).join(' ')} (a shared machine: figures are medians (min–max) of ${reps} interleaved runs, read the ratios).`,
  `Archive: cuda-libs fixture ${mib(large.bytes)} MiB (${mib(large.uncompressedBytes)} MiB unpacked, ${large.files} entries, ${(large.bytes / large.uncompressedBytes * 100).toFixed(0)}% gzip ratio), served by ${srv.kind} on 127.0.0.1 (page cache, loopback). Wall times are spawn-to-exit of a fresh process per run (node start-up included for node variants).`,
  '',
  ...rows.map((r, i) => `| ${r.join(' | ')} |${i === 0 ? `\n|${r.map(() => '---').join('|')}|` : ''}`),
  '',
  `Total bench time ${((performance.now() - t0) / 1000).toFixed(0)} s.`,
  '',
].join('\n');
process.stdout.write(md);
await writeFile(path.join(OUT, 'latest.md'), md);
