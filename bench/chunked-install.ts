/**
 * Cold install speed of a lander-packed (chunked) cuda-libs folder from
 * loopback nginx, side by side in one run, all reading the same archive:
 *   chunked   lander's indexed install, inflate pool of os.availableParallelism() workers
 *   chunked-1 the same with the pool forced to 1 worker (the scaling)
 *   three-pass download to a file, hash it, extract it (bench/install-child.ts)
 *   pigz      `curl | pigz -dc | tar -x`
 * Each run in a fresh process and folder, interleaved, medians of BENCH_REPS (default 3).
 *
 * @example npm run build && BENCH_SCALE=256 node dist/bench/chunked-install.js
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTarGz } from '../src/pack/pack-dir.ts';
import { walkSource } from '../src/pack/walk.ts';
import { cudaTree, fileBody, OUT } from './fixture.ts';
import { serveDir } from './serve.ts';
import { median } from './stats.ts';

const MB = 1 << 20;
const WORK = path.join(OUT, 'chunked');
const CHILD = fileURLToPath(new URL('./chunked-child.js', import.meta.url));
const THREE = fileURLToPath(new URL('./install-child.js', import.meta.url));

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d));
    c.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - t0, stdout }) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function buildRelease(mb: number): Promise<{ archive: string; sha256: string; indexSha256: string; bytes: number }> {
  const base = path.join(WORK, `cuda-libs-${mb}mb`);
  const meta = `${base}.json`;
  try {
    return JSON.parse(await readFile(meta, 'utf8'));
  } catch { /* not built yet */ }
  const src = `${base}-src`;
  await rm(src, { recursive: true, force: true });
  for (const f of cudaTree(mb * MB).files) {
    const abs = path.join(src, f.path);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFile(abs, Buffer.concat([...fileBody(f)]));
    await chmod(abs, f.mode);
  }
  const archive = `${base}.tar.gz`;
  const r = await writeTarGz(src, await walkSource(src), archive, { chunked: { indexFile: `${archive}.index`, avgChunk: 16 * 1024 } });
  await rm(src, { recursive: true, force: true });
  const out = { archive, sha256: r.sha256, indexSha256: r.index!.sha256, bytes: r.size };
  await writeFile(meta, JSON.stringify(out));
  return out;
}

async function main(): Promise<void> {
  const mb = Number(process.env.BENCH_SCALE ?? 256);
  const reps = Number(process.env.BENCH_REPS ?? 3);
  await mkdir(WORK, { recursive: true });
  const rel = await buildRelease(mb);
  const srv = await serveDir(WORK, path.join(WORK, 'srv'));
  const url = srv.url(rel.archive);
  const variants = ['chunked', 'chunked-1', 'three-pass', 'pigz'] as const;
  const times = new Map<string, number[]>(variants.map((v) => [v, []]));
  const cpu = new Map<string, number[]>(variants.map((v) => [v, []]));
  const rss = new Map<string, number[]>(variants.map((v) => [v, []]));
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(i + rep) % variants.length]!;
        const dir = path.join(WORK, `x-${v}-${rep}`);
        const part = path.join(WORK, `part-${v}-${rep}`);
        await rm(dir, { recursive: true, force: true });
        let r;
        if (v === 'pigz') {
          await mkdir(dir);
          r = await run('bash', ['-c', 'set -o pipefail; curl -sf "$URL" | pigz -dc | tar -x -C "$DIR"'], { URL: url, DIR: dir });
        } else if (v === 'three-pass') {
          r = await run(process.execPath, [THREE, JSON.stringify({ variant: 'three-pass', url, sha256: rel.sha256, dir, scratch: part })]);
        } else {
          r = await run(process.execPath, [CHILD, JSON.stringify({ url, indexUrl: `${url}.index`, sha256: rel.sha256, indexSha256: rel.indexSha256, dir, part, ...(v === 'chunked-1' ? { workers: 1 } : {}) })]);
        }
        times.get(v)!.push(r.ms);
        const out = r.stdout.trim() ? (JSON.parse(r.stdout.trim().split('\n').pop()!) as { cpuMs?: number; maxRssKiB?: number }) : {};
        if (out.cpuMs !== undefined) cpu.get(v)!.push(out.cpuMs);
        if (out.maxRssKiB !== undefined) rss.get(v)!.push(out.maxRssKiB / 1024);
        console.error(`rep ${rep} ${v}: ${(r.ms / 1000).toFixed(2)} s${out.cpuMs !== undefined ? `, CPU ${(out.cpuMs / 1000).toFixed(2)} s` : ''}${out.maxRssKiB !== undefined ? `, peak RSS ${(out.maxRssKiB / 1024).toFixed(0)} MiB` : ''} (load ${os.loadavg()[0]!.toFixed(1)})`);
        await rm(dir, { recursive: true, force: true });
        for (const leftover of ['', '.json', '.tree', '.prev']) await rm(`${part}${leftover}`, { recursive: true, force: true });
      }
    }
  } finally {
    await srv.close();
  }
  const base = median(times.get('three-pass')!);
  const pigz = median(times.get('pigz')!);
  const rows = variants.map((v) => `| ${v} | ${(median(times.get(v)!) / 1000).toFixed(2)} s | ${(median(times.get(v)!) / base).toFixed(2)} | ${(median(times.get(v)!) / pigz).toFixed(2)} | ${cpu.get(v)!.length ? `${(median(cpu.get(v)!) / 1000).toFixed(2)} s` : '—'} | ${rss.get(v)!.length ? `${median(rss.get(v)!).toFixed(0)} MiB` : '—'} |`);
  console.log(`cuda-libs ${(rel.bytes / MB).toFixed(0)} MB chunked archive, ${os.availableParallelism()} cores, ${srv.kind}, medians of ${reps}\n\n| variant | wall | vs three-pass | vs curl\\|pigz\\|tar | CPU (node) | peak RSS |\n|---|---|---|---|---|---|\n${rows.join('\n')}`);
  void createHash; void stat;
}

await main();
