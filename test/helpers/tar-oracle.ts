/**
 * GNU tar as the oracle (HOSTILE-INPUT.md): extract the same `.tar.gz` with
 * lander's extractor (in process, the code the install worker runs) and with
 * GNU tar as an unprivileged uid, and compare the trees: type, content, exec
 * bit, link target. Plus raw header builders for shapes no tool writes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startExtraction } from '../../src/install/extract.ts';
import { ArchiveSink } from '../../src/install/archive-sink.ts';
import { PartHasher } from '../../src/install/part-hasher.ts';
import { TEST_LIMITS } from './install-request.ts';

export type Tree = Record<string, string>;
export type LanderResult = { ok: true; tree: Tree } | { ok: false; code: string; message: string };

/**
 * One line per path: `file x <sha16>`, `dir`, `symlink -> target`. Listed by Python on bytes, so names
 * that are not UTF-8 (which Deno cannot name as paths) are kept, shown as \\xNN.
 */
export async function readTree(root: string): Promise<Tree> {
  const r = spawnSync('python3', ['-c', LIST_TREE, root], { maxBuffer: 64 << 20, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`listing ${root}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Tree;
}

const LIST_TREE = `
import hashlib, json, os, stat, sys
root = os.fsencode(sys.argv[1])
def show(b):
    try: return b.decode('utf-8')
    except UnicodeDecodeError: return ''.join(chr(c) if c < 0x80 else '\\\\x%02x' % c for c in b)
out = {}
def walk(rel):
    d = os.path.join(root, rel) if rel else root
    for name in sorted(os.listdir(d)):
        r = os.path.join(rel, name) if rel else name
        a = os.path.join(root, r)
        st = os.lstat(a)
        k = show(r)
        if stat.S_ISLNK(st.st_mode): out[k] = 'symlink -> ' + show(os.readlink(a))
        elif stat.S_ISDIR(st.st_mode):
            out[k] = 'dir'
            walk(r)
        elif stat.S_ISREG(st.st_mode):
            with open(a, 'rb') as f: h = hashlib.sha256(f.read()).hexdigest()[:16]
            out[k] = 'file %s %s' % ('x' if st.st_mode & 0o111 else '-', h)
        else: out[k] = 'other %o' % st.st_mode
walk(b'')
print(json.dumps(dict(sorted(out.items()))))
`;

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/** lander's extraction of `gz` into a fresh folder under `work`: the tree, or the refusal. */
export async function landerExtract(gz: Buffer, work: string, limits = TEST_LIMITS): Promise<LanderResult> {
  const staging = path.join(work, `lander-${Math.random().toString(36).slice(2)}`);
  const x = await startExtraction({ component: 'oracle', stagingDir: staging, limits, archiveBytes: () => gz.length, flush: 'none' });
  try {
    x.input.end(gz);
    await x.finished;
    return { ok: true, tree: await readTree(staging) };
  } catch (err) {
    return { ok: false, code: (err as { code?: string }).code ?? 'none', message: (err as Error).message };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The same extraction with gunzip in the hash worker, as a large archive is installed: the bytes go
 * to a `.part` the worker reads back, hashes and inflates, and the tar stream comes back to this thread.
 */
export async function landerExtractOffThread(gz: Buffer, work: string, limits = TEST_LIMITS): Promise<LanderResult> {
  const id = Math.random().toString(36).slice(2);
  const staging = path.join(work, `lander-ot-${id}`);
  const part = path.join(work, `ot-${id}.part`);
  await writeFile(part, gz);
  const x = await startExtraction({ component: 'oracle', stagingDir: staging, limits, archiveBytes: () => gz.length, flush: 'none' });
  const sink = new ArchiveSink(x, new PartHasher(part, { maxMetaBytes: limits.maxMetaEntrySize }), { offThread: () => true });
  try {
    await sink.push([gz]);
    sink.onDisk(gz.length);
    const digest = await sink.digest();
    if (digest !== createHash('sha256').update(gz).digest('hex')) throw new Error(`the hash worker's digest ${digest} is not the archive's`);
    sink.endInput();
    await x.finished;
    // Each per-file digest in the record must be the SHA-256 of the file as written.
    for (const f of x.files) {
      if (f.type !== 'file') continue;
      const actual = createHash('sha256').update(await readFile(path.join(staging, f.path))).digest('hex');
      if (f.sha256 !== actual) throw new Error(`the record of ${f.path} says sha256 ${f.sha256}, the file has ${actual}`);
    }
    return { ok: true, tree: await readTree(staging) };
  } catch (err) {
    return { ok: false, code: (err as { code?: string }).code ?? 'none', message: (err as Error).message };
  } finally {
    sink.close();
    await rm(staging, { recursive: true, force: true });
    await rm(part, { force: true });
  }
}

/** GNU tar's extraction of `gz`, run as uid/gid 65534 with no groups: exit status, stderr and tree. */
export async function gnuExtract(gz: Buffer, work: string): Promise<{ status: number | null; stderr: string; tree: Tree }> {
  const dir = path.join(work, `gnu-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, 65534, 65534);
  try {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'tar', '-xzf', '-', '-C', dir], { input: gz, timeout: 30_000, env: { PATH: process.env.PATH, LC_ALL: 'C' } });
    return { status: r.status, stderr: r.stderr.toString(), tree: await readTree(dir) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True when GNU tar is runnable as an unprivileged user here (root with setpriv). */
export function haveGnuTar(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'tar', '--version'], { encoding: 'utf8' });
  return r.status === 0 && /GNU tar/.test(r.stdout);
}

/** A 512-byte header from raw field bytes, with a correct checksum unless `sum` is given. */
export function header(o: {
  name: Buffer | string; flag?: string; size?: number; mode?: number | string; linkname?: Buffer | string;
  magic?: 'ustar' | 'gnu' | 'v7'; prefix?: string; sum?: number;
}): Buffer {
  const b = Buffer.alloc(512);
  Buffer.from(o.name).copy(b, 0, 0, 100);
  b.write(typeof o.mode === 'string' ? o.mode : `${(o.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 'latin1');
  b.write('0000000\0', 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  b.write(`${(o.size ?? 0).toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  b.write('14536075400\0', 136, 'latin1');
  b.write(o.flag ?? '0', 156, 'latin1');
  if (o.linkname !== undefined) Buffer.from(o.linkname).copy(b, 157, 0, 100);
  const magic = o.magic ?? 'ustar';
  if (magic === 'ustar') b.write('ustar\x0000', 257, 'latin1');
  if (magic === 'gnu') b.write('ustar  \0', 257, 'latin1');
  if (o.prefix) b.write(o.prefix, 345, 'utf8');
  return setSum(b, o.sum);
}

export function setSum(b: Buffer, sum?: number): Buffer {
  b.write('        ', 148, 'latin1');
  let s = 0;
  for (const c of b) s += c;
  b.write(`${(sum ?? s).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

/** `data` padded to whole blocks. */
export const pad = (data: Buffer | string): Buffer => {
  const d = Buffer.from(data);
  return Buffer.concat([d, Buffer.alloc((512 - (d.length % 512)) % 512)]);
};

/** A file entry: header and padded body. */
export const fileEntry = (name: Buffer | string, content: Buffer | string, extra: Parameters<typeof header>[0] extends infer H ? Partial<H> : never = {}): Buffer =>
  Buffer.concat([header({ name, size: Buffer.byteLength(content), ...extra }), pad(content)]);

/** A pax header ('x' or 'g') with the given raw body. */
export const paxEntry = (body: Buffer | string, flag = 'x', name = 'PaxHeader/f'): Buffer => Buffer.concat([header({ name, flag, size: Buffer.byteLength(body) }), pad(body)]);

/** One pax record with its self-counting length. */
export function rec(key: string, value: string | Buffer): Buffer {
  const tail = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  let len = tail.length + 1;
  while (String(len).length + tail.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), tail]);
}

export const END = Buffer.alloc(1024);
