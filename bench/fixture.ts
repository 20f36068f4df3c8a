/**
 * Realistic stand-ins for voicebox's two archives: a PyInstaller one-folder
 * build split into a core folder (thousands of small compressible files,
 * tens of mid-size shared libraries) and a cuda-libs folder (a few large
 * libraries that mix random and low-entropy blocks, about 60% gzip ratio).
 *
 * Archives are packed with tar-stream and zlib (level 6) straight to disk
 * and hashed on the way; nothing the size of an archive is held in memory.
 * Generated files are cached under bench/out/ keyed by kind and size.
 *
 * @example node dist/bench/fixture.js 250   # writes bench/out/fixtures/cuda-libs-250mb.tar.gz
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { prng as rng } from '../src/base/prng.ts';

export const OUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/out');
const FIX = path.join(OUT, 'fixtures');
const MB = 1 << 20;
/** Compressed/uncompressed of the mix below, measured on this generator (see `calibrate`). */
const EXPECTED_RATIO = 0.6;

export type Fill = 'text' | 'lib' | 'random';
export interface TreeFile {
  path: string;
  size: number;
  fill: Fill;
  seed: number;
  mode: number;
}
export interface Tree {
  files: TreeFile[];
  symlinks: { path: string; linkname: string }[];
}

export interface Fixture {
  file: string;
  sha256: string;
  bytes: number;
  uncompressedBytes: number;
  files: number;
}

/**
 * The cuda-libs folder: a few large libraries (libcublasLt, libcudnn_*,
 * libnccl ...) plus tens of mid-size ones, summing to about `archiveBytes`
 * once compressed.
 */
export function cudaTree(archiveBytes: number): Tree {
  const total = archiveBytes / EXPECTED_RATIO;
  const r = rng(7);
  const files: TreeFile[] = [];
  const symlinks: Tree['symlinks'] = [];
  const big = ['libcublasLt.so.12', 'libcudnn_engines_precompiled.so.9', 'libcusparse.so.12', 'libcufft.so.11', 'libcublas.so.12', 'libnccl.so.2'];
  const bigShare = [0.3, 0.2, 0.12, 0.1, 0.06, 0.06];
  big.forEach((name, i) => files.push({ path: `_internal/nvidia/${name}`, size: Math.round(total * bigShare[i]!), fill: 'lib', seed: 100 + i, mode: 0o755 }));
  const midTotal = total * (1 - bigShare.reduce((a, b) => a + b, 0));
  const mids = 40;
  for (let i = 0; i < mids; i++) {
    const name = `_internal/nvidia/lib/libcuda_mid_${i}.so.12`;
    files.push({ path: name, size: Math.round((midTotal / mids) * (0.5 + r())), fill: 'lib', seed: 200 + i, mode: 0o755 });
    if (i % 4 === 0) symlinks.push({ path: name.replace(/\.12$/, ''), linkname: path.posix.basename(name) });
  }
  for (let i = 0; i < 30; i++) files.push({ path: `_internal/nvidia/include/cuda_${i}.h`, size: 2000 + Math.floor(r() * 40_000), fill: 'text', seed: 300 + i, mode: 0o644 });
  return { files, symlinks };
}

/**
 * The core folder of a PyInstaller build: `fileCount` small Python/data
 * files in a package-like hierarchy, tens of mid-size libraries, the
 * executable and base_library.zip; about `archiveBytes` compressed.
 */
export function coreTree(archiveBytes: number, fileCount = 9000): Tree {
  const total = archiveBytes / EXPECTED_RATIO;
  const r = rng(11);
  const files: TreeFile[] = [{ path: 'voicebox-server-cuda', size: 4 * MB, fill: 'lib', seed: 1, mode: 0o755 }];
  files.push({ path: '_internal/base_library.zip', size: 1.5 * MB, fill: 'random', seed: 2, mode: 0o644 });
  const pkgs = ['torch', 'transformers', 'numpy', 'scipy', 'librosa', 'tokenizers', 'fastapi', 'uvicorn', 'pydantic', 'soundfile', 'huggingface_hub', 'safetensors'];
  const smallBudget = Math.min(total * 0.25, fileCount * 24_000);
  const avgSmall = smallBudget / fileCount;
  for (let i = 0; i < fileCount; i++) {
    const pkg = pkgs[i % pkgs.length]!;
    const depth = 1 + Math.floor(r() * 3);
    const dirs = Array.from({ length: depth }, (_, d) => `m${Math.floor(r() * (8 >> d))}`).join('/');
    const ext = r() < 0.6 ? 'py' : r() < 0.5 ? 'pyi' : 'json';
    files.push({ path: `_internal/${pkg}/${dirs}/f${i}.${ext}`, size: Math.max(64, Math.round(avgSmall * 2 * r() * r() * 2)), fill: 'text', seed: 1000 + i, mode: 0o644 });
  }
  const mids = 30;
  const midBudget = Math.max(0, total - smallBudget - 5.5 * MB);
  for (let i = 0; i < mids; i++) {
    files.push({ path: `_internal/${pkgs[i % pkgs.length]}/lib/lib_${i}.cpython-311-x86_64-linux-gnu.so`, size: Math.round((midBudget / mids) * (0.5 + r())), fill: 'lib', seed: 500 + i, mode: 0o755 });
  }
  return { files, symlinks: [{ path: '_internal/lib/libcudart.so', linkname: 'libcudart.so.12' }] };
}

/**
 * Deterministic file bodies in pieces of at most 1 MiB. `lib` alternates
 * random blocks (compressed code and data sections) and low-entropy ones
 * (symbol tables, padding, relocation runs), `text` looks like source code.
 */
export function* fileBody(f: TreeFile): Generator<Buffer> {
  const key = createHash('sha256').update(`${f.seed}`).digest().subarray(0, 16);
  const aes = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const r = rng(f.seed);
  let left = f.size;
  const piece = MB;
  while (left > 0) {
    const n = Math.min(piece, left);
    if (f.fill === 'random') yield aes.update(Buffer.alloc(n));
    else if (f.fill === 'text') yield textBlock(n, r);
    else {
      // 64 KiB blocks: half random, the rest low entropy, for ~60% gzip ratio overall.
      const parts: Buffer[] = [];
      for (let off = 0; off < n; off += 64 * 1024) {
        const m = Math.min(64 * 1024, n - off);
        parts.push(r() < 0.5 ? aes.update(Buffer.alloc(m)) : lowEntropyBlock(m, r));
      }
      yield Buffer.concat(parts);
    }
    left -= n;
  }
}

const WORDS = 'def class return self import from None True False if else elif for in while try except with as yield lambda tensor shape dtype device torch nn module forward weight bias config kwargs args value key index range len list dict str int float'.split(' ');
function textBlock(n: number, r: () => number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  while (o < n) {
    const w = r() < 0.1 ? '\n    ' : r() < 0.05 ? `${Math.floor(r() * 100000)}` : WORDS[Math.floor(r() * WORDS.length)]! + (r() < 0.2 ? '(' : r() < 0.2 ? '.' : ' ');
    o += out.write(w, o);
  }
  return out;
}

function lowEntropyBlock(n: number, r: () => number): Buffer {
  const out = Buffer.alloc(n);
  // Sparse, repetitive structure: a small alphabet of 8-byte records with runs of zeros between them.
  const alphabet = Array.from({ length: 16 }, () => Math.floor(r() * 256));
  for (let i = 0; i < n; i += 8) {
    if (r() < 0.7) continue;
    for (let j = 0; j < 8 && i + j < n; j++) out[i + j] = alphabet[Math.floor(r() * 4) + (j & 3) * 4]!;
  }
  return out;
}

/** Packs `tree` into `file` (.tar.gz, zlib level 6) via a temp name; returns digest and sizes. */
export async function packTree(tree: Tree, file: string, root = ''): Promise<Fixture> {
  const pack = tar.pack();
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const tmp = `${file}.tmp`;
  const done = pipeline(pack, createGzip({ level: 6, chunkSize: 256 * 1024 }), tap, createWriteStream(tmp));
  const mtime = new Date(1_700_000_000_000);
  const dirs = new Set<string>();
  const name = (p: string) => (root ? `${root}/${p}` : p);
  let uncompressedBytes = 0;
  for (const f of tree.files) {
    for (let d = path.posix.dirname(f.path); d !== '.' && !dirs.has(d); d = path.posix.dirname(d)) dirs.add(d);
  }
  for (const d of [...dirs].sort()) await entry(pack, { name: name(d), type: 'directory', mode: 0o755, mtime });
  for (const f of tree.files) {
    const w = pack.entry({ name: name(f.path), size: f.size, mode: f.mode, mtime });
    for (const chunk of fileBody(f)) {
      if (!w.write(chunk)) await new Promise<void>((resolve) => w.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
    uncompressedBytes += f.size;
  }
  for (const s of tree.symlinks) await entry(pack, { name: name(s.path), type: 'symlink', linkname: s.linkname, mode: 0o777, mtime });
  pack.finalize();
  await done;
  await rename(tmp, file);
  return { file, sha256: hash.digest('hex'), bytes, uncompressedBytes, files: tree.files.length + tree.symlinks.length };
}

function entry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header as tar.Header, (err) => (err ? reject(err) : resolve())));
}

/**
 * The cached fixture of `kind` at about `mb` MB compressed, generated on
 * first use. The cache key is the kind, the size and a version of this generator.
 */
export async function fixture(kind: 'cuda-libs' | 'core', mb: number): Promise<Fixture> {
  await mkdir(FIX, { recursive: true });
  const base = path.join(FIX, `${kind}-${mb}mb-v1`);
  try {
    return JSON.parse(await readFile(`${base}.json`, 'utf8')) as Fixture;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tree = kind === 'core' ? coreTree(mb * MB) : cudaTree(mb * MB);
  const t0 = performance.now();
  const fx = await packTree(tree, `${base}.tar.gz`);
  process.stderr.write(`fixture: ${kind} ${mb} MB → ${(fx.bytes / MB).toFixed(0)} MB (${(fx.bytes / fx.uncompressedBytes * 100).toFixed(0)}% of ${(fx.uncompressedBytes / MB).toFixed(0)} MB, ${fx.files} entries) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  await writeFile(`${base}.json`, JSON.stringify(fx, null, 2));
  return fx;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const mb = Number(process.argv[2] ?? process.env.BENCH_SCALE ?? 1024);
  for (const kind of ['cuda-libs', 'core'] as const) console.log(JSON.stringify(await fixture(kind, kind === 'core' ? Math.max(8, Math.round(mb * 0.15)) : mb)));
}
