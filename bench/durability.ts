/**
 * Durability cost (issue 13, item 8): extraction of the bench archives with
 * each flush mode of src/install/flush.ts (none, fsync at each close, fsync
 * of everything at the end, syncfs, write-behind), interleaved in shuffled order, each run
 * after a `sync` so no run pays for another's dirty pages. Reads the archive
 * from the page cache (it is read once before), writes to bench/out/work.
 * There is no `.part` here: in an install, syncfs also writes the `.part`
 * back (kept for resume), which this bench does not charge it for.
 *
 * @example node dist/bench/durability.js 1024 3 10   # cuda-libs 1 GB and a 10 MB core (9,000 small files), 3 rounds
 */
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { startExtraction } from '../src/install/extract.ts';
import type { FlushMode } from '../src/install/flush.ts';
import { fixture, OUT, type Fixture } from './fixture.ts';
import { pairedRatio, summary } from './stats.ts';

const MODES: FlushMode[] = ['none', 'close', 'batch', 'syncfs', 'behind'];
const LIMITS = { maxEntries: 1_000_000, maxExpansionRatio: 1000, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 1024, maxExtractedBytes: 64 * 2 ** 30 };

async function once(fx: Fixture, mode: FlushMode, dir: string): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  spawnSync('sync');
  const t0 = performance.now();
  const x = await startExtraction({ component: 'bench', stagingDir: dir, limits: LIMITS, archiveBytes: () => fx.bytes, flush: mode });
  await pipeline(createReadStream(fx.file, { highWaterMark: 1 << 20 }), x.input);
  await x.finished;
  const ms = performance.now() - t0;
  if (x.files.filter((f) => f.type === 'file').length === 0) throw new Error('nothing extracted');
  return ms;
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export async function durabilityBench(mb: number, rounds: number, coreMb = 10): Promise<string> {
  const lines: string[] = [];
  const dir = path.join(OUT, 'work', 'durability');
  for (const [kind, size] of [['cuda-libs', mb], ['core', coreMb]] as const) {
    const fx = await fixture(kind, size);
    await readFile(fx.file); // into the page cache: the runs measure extraction and flush, not the archive's first read
    const ms: Record<string, number[]> = Object.fromEntries(MODES.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) {
      for (const mode of shuffled(MODES, r + 1)) {
        const t = await once(fx, mode, dir);
        ms[mode]!.push(t);
        process.stderr.write(`durability: ${kind} ${mode} round ${r + 1}: ${(t / 1000).toFixed(2)} s\n`);
      }
    }
    await rm(dir, { recursive: true, force: true });
    lines.push(`${kind} fixture ${(fx.bytes / 2 ** 20).toFixed(0)} MiB (${(fx.uncompressedBytes / 2 ** 20).toFixed(0)} MiB unpacked, ${fx.files} entries):`, '', '| flush | extraction wall time, s | ÷ none (paired) |', '|---|---|---|');
    for (const m of MODES) {
      const r = pairedRatio(ms[m]!, ms.none!);
      lines.push(`| ${m} | ${summary(ms[m]!.map((x) => x / 1000), 2)} | ${m === 'none' ? '1' : `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const mb = Number(process.argv[2] ?? process.env.BENCH_SCALE ?? 1024);
  const rounds = Number(process.argv[3] ?? 3);
  durabilityBench(mb, rounds, Number(process.argv[4] ?? 10)).then((t) => console.log(t), (err) => {
    console.error(err);
    process.exit(1);
  });
}
