/**
 * A small folder whose bytes compress like a real PyInstaller core
 * (source-like text files, libraries of random and low-entropy blocks):
 * deterministic from a seed, so two calls give the same bytes and a test
 * can change a few files for a delta bump.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { prng as rng } from '../../src/base/prng.ts';

const WORDS = 'def class return self import from None True False if else for in while try except with as yield tensor shape dtype device torch module forward weight bias config kwargs value key index range len list dict'.split(' ');

/** Source-like text of `n` bytes. */
export function textBytes(n: number, seed: number): Buffer {
  const r = rng(seed);
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  while (o < n) o += out.write(r() < 0.1 ? '\n    ' : `${WORDS[Math.floor(r() * WORDS.length)]!}${r() < 0.2 ? '(' : ' '}`, o);
  return out;
}

/** A library-like body: 16 KiB blocks, half random, half sparse records. */
export function libBytes(n: number, seed: number): Buffer {
  const r = rng(seed);
  const aes = createCipheriv('aes-128-ctr', createHash('sha256').update(String(seed)).digest().subarray(0, 16), Buffer.alloc(16));
  const parts: Buffer[] = [];
  for (let off = 0; off < n; off += 16384) {
    const m = Math.min(16384, n - off);
    if (r() < 0.5) parts.push(aes.update(Buffer.alloc(m)));
    else {
      const b = Buffer.alloc(m);
      for (let i = 0; i < m; i += 8) if (r() < 0.3) b.fill(Math.floor(r() * 16), i, Math.min(m, i + 8));
      parts.push(b);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Writes the tree: `files` text modules (a few hundred bytes to ~40 KB),
 * two libraries of `libBytes` each, an executable and a relative symlink.
 * `overrides` replaces the content of named paths (a bump).
 */
export async function makeSourceTree(dir: string, opts: { files?: number; libBytes?: number; overrides?: Record<string, Buffer> } = {}): Promise<string[]> {
  const r = rng(5);
  const put = async (rel: string, data: Buffer, mode = 0o644) => {
    const abs = path.join(dir, rel);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFile(abs, opts.overrides?.[rel] ?? data);
    await chmod(abs, mode);
  };
  const paths: string[] = [];
  await put('voicebox-server-cuda', libBytes(opts.libBytes ?? 512 * 1024, 1), 0o755);
  await put('_internal/libtorch.so', libBytes(opts.libBytes ?? 512 * 1024, 2), 0o755);
  for (let i = 0; i < (opts.files ?? 60); i++) {
    const rel = `_internal/pkg${i % 5}/mod${i}.py`;
    await put(rel, textBytes(200 + Math.floor(r() * r() * 40_000), 100 + i));
    paths.push(rel);
  }
  await symlink('libtorch.so', path.join(dir, '_internal/libtorch.so.2'));
  return paths;
}
