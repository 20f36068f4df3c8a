/**
 * Generation benchmark: `buildGeneration` of a 10,000-file tree from one
 * read-only store entry (made once) against coreutils' `cp -al` of the same
 * tree, interleaved. Both end with a complete hard-link farm; lander also
 * checks conflicts, fsyncs the folder and renames into place.
 *
 * `node dist/bench/generation.js` runs it alone.
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGeneration } from '../src/store/generation.ts';
import { mapLimit } from '../src/base/map-limit.ts';
import type { FileRecord } from '../workers/protocol.ts';
import { coreTree, OUT } from './fixture.ts';
import { pairedRatio, ratioText, summary } from './stats.ts';

const ROOT = path.join(OUT, 'work', 'gen');

/** The store entry: `count` small files in a PyInstaller-like hierarchy, read-only; cached. */
export async function storeEntry(count: number): Promise<{ dir: string; files: FileRecord[] }> {
  const dir = path.join(ROOT, `entry-${count}`);
  const index = `${dir}.files.json`;
  try {
    return { dir, files: JSON.parse(await readFile(index, 'utf8')) as FileRecord[] };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await rm(dir, { recursive: true, force: true });
  const tree = coreTree(0, count).files.filter((f) => f.fill === 'text').slice(0, count);
  while (tree.length < count) tree.push({ ...tree[0]!, path: `_internal/extra/f${tree.length}.py` });
  const dirs = new Set<string>();
  for (const f of tree) for (let d = path.posix.dirname(f.path); d !== '.'; d = path.posix.dirname(d)) dirs.add(d);
  const sorted = [...dirs].sort();
  for (const d of sorted) await mkdir(path.join(dir, d), { recursive: true });
  await mapLimit(tree, 32, async (f) => {
    const abs = path.join(dir, f.path);
    await writeFile(abs, `# ${f.path}\n`.repeat(1 + (f.seed % 64)));
    await chmod(abs, 0o444); // store entries are read-only
  });
  const files: FileRecord[] = [
    ...sorted.map((p): FileRecord => ({ path: p, type: 'directory', size: 0, mode: 0o755 })),
    ...tree.map((f): FileRecord => ({ path: f.path, type: 'file', size: 0, mode: 0o644 })),
  ];
  await writeFile(index, JSON.stringify(files));
  return { dir, files };
}

export interface GenerationResult {
  files: number;
  lander: number[];
  cp: number[];
}

export async function generationBench(count: number, reps: number): Promise<GenerationResult> {
  const entry = await storeEntry(count);
  const out: GenerationResult = { files: entry.files.filter((f) => f.type !== 'directory').length, lander: [], cp: [] };
  for (let rep = 0; rep < reps; rep++) {
    for (const which of rep % 2 ? ['cp', 'lander'] as const : ['lander', 'cp'] as const) {
      const target = path.join(ROOT, `gen-${which}-${rep}`);
      await rm(target, { recursive: true, force: true });
      spawnSync('sync');
      const t0 = performance.now();
      if (which === 'lander') {
        const stats = await buildGeneration(target, [{ component: 'core', dir: entry.dir, files: entry.files }]);
        if (stats.linked !== out.files) throw new Error(`linked ${stats.linked} of ${out.files}`);
      } else {
        const r = spawnSync('cp', ['-al', entry.dir, target]);
        if (r.status !== 0) throw new Error(`cp -al failed: ${r.stderr}`);
      }
      out[which].push((performance.now() - t0) / 1000);
      await rm(target, { recursive: true, force: true });
    }
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const r = await generationBench(10_000, Number(process.env.BENCH_REPS ?? 5));
  console.log(`${r.files} files: buildGeneration ${summary(r.lander, 3)} s, cp -al ${summary(r.cp, 3)} s, ratio ${ratioText(pairedRatio(r.lander, r.cp))}`);
}
