/**
 * Builds real `.tar.gz` archives for tests, with tar-stream's pack and zlib,
 * from a plain description; hostile shapes (devices, `..` names, absolute
 * links, raw hand-made header blocks) included, since tar-stream's pack
 * writes whatever it is given.
 *
 * @example
 * const gz = await buildTarGz([
 *   { name: 'bin/server', content: '#!/bin/sh\n', mode: 0o755 },
 *   { type: 'symlink', name: 'lib/libcudart.so', linkname: 'libcudart.so.12' },
 * ]);
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar, { type Header } from 'tar-stream';

/** One archive entry. `name` goes into the header verbatim (no checks). */
export type ArchiveEntry =
  | { type?: 'file'; name: string; content: string | Buffer; mode?: number; mtime?: Date }
  | { type: 'directory'; name: string; mode?: number }
  | { type: 'symlink'; name: string; linkname: string }
  | { type: 'link'; name: string; linkname: string }
  /** Any tar-stream header (e.g. `type: 'character-device'`, `'fifo'`, a pax record), with an optional body. */
  | { type: 'header'; header: Partial<Omit<Header, 'type'>> & { name: string; type?: string }; content?: Buffer }
  /** Bytes spliced into the tar stream as they are: hand-made header blocks and bodies. */
  | { type: 'raw'; data: Buffer };

/** Builds the uncompressed tar bytes, ending with the two zero blocks. */
export async function buildTar(entries: ArchiveEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.type === 'raw') { parts.push(e.data); continue; }
    // Each entry is packed on its own and stripped of the end-of-archive blocks, so raw blocks can sit between entries.
    const one = await packOne(e);
    parts.push(one.subarray(0, one.length - 1024));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Builds a `.tar.gz`. @param level zlib level; 1 keeps big test archives fast. */
export async function buildTarGz(entries: ArchiveEntry[], level = 6): Promise<Buffer> {
  return gzipSync(await buildTar(entries), { level });
}

/** Writes a `.tar.gz` and returns its SHA-256 (hex) and size. */
export async function writeTarGz(file: string, entries: ArchiveEntry[], level = 6): Promise<{ sha256: string; size: number }> {
  const gz = await buildTarGz(entries, level);
  await writeFile(file, gz);
  return { sha256: sha256Hex(gz), size: gz.length };
}

export function sha256Hex(buf: Buffer | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

function packOne(e: Exclude<ArchiveEntry, { type: 'raw' }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => { chunks.push(c as Buffer); });
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  const mtime = new Date(1_700_000_000_000);
  switch (e.type) {
    case undefined:
    case 'file': {
      const body = Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content);
      pack.entry({ name: e.name, mode: e.mode ?? 0o644, mtime: e.mtime ?? mtime, size: body.length }, body);
      break;
    }
    case 'directory': pack.entry({ name: e.name, type: 'directory', mode: e.mode ?? 0o755, mtime }); break;
    case 'symlink': pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname, mode: 0o777, mtime }); break;
    case 'link': pack.entry({ name: e.name, type: 'link', linkname: e.linkname, mode: 0o644, mtime }); break;
    case 'header': pack.entry({ ...e.header, mtime: e.header.mtime ?? mtime, mode: e.header.mode ?? 0o644 } as Header, e.content ?? Buffer.alloc(0)); break;
  }
  pack.finalize();
  return done;
}

/**
 * A hand-made ustar header block (512 bytes) with a correct checksum, for
 * shapes tar-stream's pack will not write (odd type flags, pax headers of a
 * chosen size). Pair it with `paddedBody()`.
 *
 * @param typeflag one character, e.g. '0' file, 'x' pax, 'L' GNU long name, 'Z' unknown
 */
export function rawHeader(name: string, typeflag: string, size: number, opts: { mode?: number; linkname?: string } = {}): Buffer {
  const b = Buffer.alloc(512);
  b.write(name.slice(0, 100), 0, 'utf8');
  b.write(((opts.mode ?? 0o644).toString(8).padStart(7, '0')) + '\0', 100, 'ascii');
  b.write('0000000\0', 108, 'ascii');
  b.write('0000000\0', 116, 'ascii');
  b.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  b.write('14536075400\0', 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(typeflag, 156, 'ascii');
  if (opts.linkname) b.write(opts.linkname.slice(0, 100), 157, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return b;
}

/** `data` padded with zeros to a multiple of 512 bytes. */
export function paddedBody(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** One pax record, `"<len> key=value\n"`, with its self-counting length. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len++;
  return `${len}${body}`;
}

/** What a voicebox-like component folder looks like; see `makeVoiceboxTree`. */
export interface VoiceboxTreeOptions {
  /** Bytes of random (incompressible) payload spread over the libraries. @default 256 KiB */
  payloadBytes?: number;
  /** Number of `_internal/lib/*.so` files. @default 4 */
  libs?: number;
}

/**
 * Creates a folder shaped like voicebox's PyInstaller one-folder build: an
 * executable, `_internal/` with shared libraries, a versioned `.so` with a
 * relative symlink to it, a read-only data file, and a nested package.
 * Returns the relative paths written.
 */
export async function makeVoiceboxTree(dir: string, opts: VoiceboxTreeOptions = {}): Promise<string[]> {
  const payload = opts.payloadBytes ?? 256 * 1024;
  const libs = opts.libs ?? 4;
  const written: string[] = [];
  const put = async (rel: string, data: Buffer | string, mode: number) => {
    const abs = path.join(dir, rel);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFile(abs, data);
    await chmod(abs, mode);
    written.push(rel);
  };
  await put('voicebox-server-cuda', '#!/bin/sh\necho voicebox\n', 0o755);
  for (let i = 0; i < libs; i++) await put(`_internal/lib/libpart${i}.so`, randomBytes(Math.ceil(payload / libs)), 0o755);
  await put('_internal/lib/libcudart.so.12', randomBytes(4096), 0o755);
  await symlink('libcudart.so.12', path.join(dir, '_internal/lib/libcudart.so'));
  written.push('_internal/lib/libcudart.so');
  await put('_internal/base_library.zip', Buffer.alloc(8192, 7), 0o444);
  await put('_internal/torch/__init__.py', '# torch\n', 0o644);
  await put('_internal/torch/version.py', "__version__ = '2.7.0+cu128'\n", 0o644);
  return written;
}

/** Packs a folder (recursively, sorted, symlinks kept as links) into `.tar.gz` bytes. */
export async function packDir(dir: string, level = 1): Promise<Buffer> {
  const entries: ArchiveEntry[] = [];
  const walk = async (rel: string) => {
    const names = (await readdir(path.join(dir, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = path.join(dir, r);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) entries.push({ type: 'symlink', name: r, linkname: await readlink(abs) });
      else if (st.isDirectory()) { entries.push({ type: 'directory', name: `${r}/`, mode: st.mode & 0o7777 }); await walk(r); }
      else entries.push({ name: r, content: await readFile(abs), mode: st.mode & 0o7777 });
    }
  };
  await walk('');
  return buildTarGz(entries, level);
}
