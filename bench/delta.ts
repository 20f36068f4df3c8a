/**
 * Delta bytes: what a bump of the bench core costs lander (chunked archive
 * + index, reuse planned from the installed version; of the index, its head
 * and the pages and leaves the installed version's kept index lacks) against zsync on
 * `gzip --rsyncable` archives of the same tar streams (control file plus
 * ranges, counted by nginx), side by side in one run. Byte counts are exact
 * whatever the machine's load.
 *
 * The core: the bench fixture's core shape (bench/fixture.ts coreTree) at
 * 4.6 MB compressed with 172 small files, 204 files in all. Bumps:
 *   a: 15 small files changed (one line rewritten in each);
 *   b: 3 KB inserted at 40% of the 4 MB library, 2 KB overwritten at 80%.
 *
 * @example npm run build && node dist/bench/delta.js [--chunk-kib 8,16]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { freePort } from '../src/base/free-port.ts';
import { decodeIndex, indexDigest, leafParts, parseHead, type ChunkIndex } from '../src/install/chunked/index-format.ts';
import { knownParts, planIndexRuns } from '../src/install/chunked/index-fetch.ts';
import { computeReusePlan } from '../src/install/chunked/reuse-plan.ts';
import { planTree } from '../src/install/chunked/tree-plan.ts';
import { indexSidecarText, landerManifest, sidecarText } from '../src/pack/outputs.ts';
import { writeTarGz } from '../src/pack/pack-dir.ts';
import { walkSource } from '../src/pack/walk.ts';
import { coreTree, fileBody, type Tree } from './fixture.ts';

const MB = 1 << 20;
const LIMITS = { maxEntries: 1e6, maxExpansionRatio: 1e3, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 1024, maxExtractedBytes: 1e12 };

async function writeTree(tree: Tree, dir: string, edit: (p: string, b: Buffer) => Buffer = (_p, b) => b): Promise<void> {
  for (const f of tree.files) {
    const abs = path.join(dir, f.path);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFile(abs, edit(f.path, Buffer.concat([...fileBody(f)])));
    await chmod(abs, f.mode);
  }
  for (const s of tree.symlinks) {
    await mkdir(path.dirname(path.join(dir, s.path)), { recursive: true });
    spawnSync('ln', ['-s', s.linkname, path.join(dir, s.path)]);
  }
}

interface Packed { gz: string; index?: ChunkIndex; indexFile?: Buffer; indexBytes?: number; sha256: string; size: number }

async function pack(dir: string, out: string, avgChunk?: number): Promise<Packed> {
  const r = await writeTarGz(dir, await walkSource(dir), out, avgChunk ? { chunked: { indexFile: `${out}.index`, avgChunk } } : {});
  if (!avgChunk) return { gz: out, sha256: r.sha256, size: r.size };
  const file = await readFile(`${out}.index`);
  return { gz: out, index: decodeIndex(file), indexFile: file, indexBytes: file.length, sha256: r.sha256, size: r.size };
}

/**
 * lander's bytes for installing `next` over an installed `prev`: manifest,
 * two sidecars, the index's prefix and head, the pages and leaves that
 * `prev`'s kept index lacks (src/install/chunked/index-fetch.ts), and the
 * archive's Range runs. Bodies only, as nginx counts zsync's; `requests`
 * says how many GETs they take.
 */
function landerBytes(prev: Packed, next: Packed): { total: number; index: number; head: number; ranges: number; runs: number; requests: number } {
  const prevTree = planTree(prev.index!.entries, LIMITS, 'core');
  const tree = planTree(next.index!.entries, LIMITS, 'core');
  const plan = computeReusePlan(next.index!, tree, [{ dir: '/old', files: prevTree.files, index: prev.index!, indexFile: prev.indexFile! }]);
  const file = next.indexFile!;
  const head = parseHead(file);
  const known = knownParts([prev.indexFile!]);
  const pageRuns = planIndexRuns(head.pages, known);
  const leafRuns = planIndexRuns(leafParts(head, head.pages.map((p) => file.subarray(p.offset, p.offset + p.length))), known);
  const indexBytes = head.headEnd + [...pageRuns, ...leafRuns].reduce((n, r) => n + r.end - r.start, 0);
  const comp = { name: 'server', version: '2', asset: 'core.tar.gz', sha256: next.sha256, size: next.size, index: { asset: 'core.tar.gz.index', sha256: indexDigest(file), size: next.indexBytes! } };
  const meta = Buffer.byteLength(landerManifest([comp])) + Buffer.byteLength(sidecarText(comp)) + Buffer.byteLength(indexSidecarText(comp)!);
  return { total: meta + indexBytes + plan.fetchBytes, index: indexBytes, head: head.headEnd, ranges: plan.fetchBytes, runs: plan.runs.length, requests: 3 + 2 + pageRuns.length + leafRuns.length + plan.runs.length };
}

async function nginx(root: string, work: string): Promise<{ origin: string; log: string; close(): Promise<void> }> {
  const port = await freePort();
  const prefix = path.join(work, 'nginx');
  await mkdir(path.join(prefix, 'tmp'), { recursive: true });
  const log = path.join(prefix, 'access.log');
  await writeFile(path.join(prefix, 'nginx.conf'), `daemon off; master_process off; worker_processes 1; pid ${prefix}/nginx.pid; error_log ${prefix}/error.log warn;
events { worker_connections 64; }
http { log_format b '$request_uri $status $body_bytes_sent'; access_log ${log} b; default_type application/octet-stream;
  client_body_temp_path ${prefix}/tmp/body; proxy_temp_path ${prefix}/tmp/proxy; fastcgi_temp_path ${prefix}/tmp/f; uwsgi_temp_path ${prefix}/tmp/u; scgi_temp_path ${prefix}/tmp/s;
  server { listen 127.0.0.1:${port}; root ${root}; } }
`);
  const child = spawn(['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p))!, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf')], { stdio: 'inherit' });
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { origin: `http://127.0.0.1:${port}`, log, close: async () => { child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r)); } };
}

/** zsync's bytes for `next` seeded with `prev` (rsyncable .tar.gz of the same tars): control file + ranges, from nginx's log. */
async function zsyncBytes(prevTar: Buffer, nextTar: Buffer, work: string, name: string): Promise<{ total: number; control: number; mode: string }> {
  const root = path.join(work, `zs-${name}`);
  await mkdir(root, { recursive: true });
  const gz = (tar: Buffer) => spawnSync('gzip', ['--rsyncable', '-6', '-n', '-c'], { input: tar, maxBuffer: 1 << 30 }).stdout;
  await writeFile(path.join(root, 'prev.tar.gz'), gz(prevTar));
  await writeFile(path.join(root, 'next.tar.gz'), gz(nextTar));
  const srv = await nginx(root, root);
  const best: { total: number; control: number; mode: string }[] = [];
  try {
    // zsyncmake's default on a .gz (look inside it) and -Z (the .gz as opaque bytes): the cheaper one is the anchor.
    for (const mode of ['default', '-Z']) {
      const ctl = path.join(root, `next-${mode}.zsync`);
      const mk = spawnSync('zsyncmake', [...(mode === '-Z' ? ['-Z'] : []), '-u', `${srv.origin}/next.tar.gz`, '-o', ctl, path.join(root, 'next.tar.gz')], { encoding: 'utf8', cwd: root });
      if (mk.status !== 0) throw new Error(`zsyncmake: ${mk.stderr}`);
      await writeFile(srv.log, '');
      const seed = mode === '-Z' ? path.join(root, 'prev.tar.gz') : path.join(root, 'prev.tar');
      if (mode !== '-Z') await writeFile(seed, prevTar);
      const outFile = path.join(root, `out-${mode}`);
      await runAsync('zsync', ['-q', '-i', seed, '-o', outFile, `${srv.origin}/next-${mode}.zsync`], root);
      // zsync's default on a .gz rebuilds the uncompressed file (a tar); -Z rebuilds the .gz itself.
      const got = await readFile(outFile);
      if (!got.equals(nextTar) && !got.equals(await readFile(path.join(root, 'next.tar.gz')))) throw new Error(`zsync ${mode} rebuilt other bytes (${got.length})`);
      await new Promise((r) => setTimeout(r, 200));
      const lines = (await readFile(srv.log, 'utf8')).trim().split('\n').map((l) => l.split(' '));
      const total = lines.reduce((n, l) => n + Number(l[2]), 0);
      const control = lines.filter((l) => l[0]!.endsWith('.zsync')).reduce((n, l) => n + Number(l[2]), 0);
      best.push({ total, control, mode });
    }
  } finally {
    await srv.close();
  }
  process.stderr.write(`zsync ${name}: ${best.map((b) => `${b.mode} ${b.total} (control ${b.control})`).join(', ')}\n`);
  return best.sort((a, b) => a.total - b.total)[0]!;
}

function runAsync(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const kibs = (process.argv.includes('--chunk-kib') ? process.argv[process.argv.indexOf('--chunk-kib') + 1]! : '8').split(',').map(Number);
  const work = await mkdtemp(path.join(os.tmpdir(), 'lander-bench-delta-'));
  try {
    const tree = coreTree(4.6 * MB, 172);
    const small = tree.files.filter((f) => f.fill === 'text');
    const changed = new Set(small.filter((_, i) => i % Math.floor(small.length / 15) === 0).slice(0, 15).map((f) => f.path));
    const lib = tree.files.find((f) => f.path === 'voicebox-server-cuda')!;
    const dirs = { v1: path.join(work, 'v1'), a: path.join(work, 'a'), b: path.join(work, 'b') };
    await writeTree(tree, dirs.v1);
    await writeTree(tree, dirs.a, (p, b) => {
      if (!changed.has(p)) return b;
      const at = Math.floor(b.length / 2);
      return Buffer.concat([b.subarray(0, at), Buffer.from(`\n__version__ = "2.0.${p.length}"\n`), b.subarray(at)]);
    });
    await writeTree(tree, dirs.b, (p, b) => {
      if (p !== lib.path) return b;
      const ins = createHash('sha512').update('ins').digest().toString('hex').repeat(24).slice(0, 3000);
      const out = Buffer.concat([b.subarray(0, Math.floor(b.length * 0.4)), Buffer.from(ins), b.subarray(Math.floor(b.length * 0.4))]);
      Buffer.from(createHash('sha512').update('ovw').digest().toString('hex').repeat(16).slice(0, 2000)).copy(out, Math.floor(out.length * 0.8));
      return out;
    });
    const single = await pack(dirs.v1, path.join(work, 'v1-single.tar.gz'));
    const g6 = spawnSync('gzip', ['-6', '-n', '-c'], { input: gunzipSync(await readFile(single.gz)), maxBuffer: 1 << 30 }).stdout.length;
    const rows: string[] = ['| chunk avg | archive vs gzip -6 | members | index file | bump | lander bytes (index fetched, of it head; ranges) | requests | zsync bytes (control) | ratio |', '|---|---|---|---|---|---|---|---|---|'];
    const zs: Record<string, { total: number; control: number; mode: string }> = {};
    for (const kib of kibs) {
      const p1 = await pack(dirs.v1, path.join(work, `v1-${kib}.tar.gz`), kib * 1024);
      for (const bump of ['a', 'b'] as const) {
        const p2 = await pack(dirs[bump], path.join(work, `${bump}-${kib}.tar.gz`), kib * 1024);
        zs[bump] ??= await zsyncBytes(gunzipSync(await readFile(p1.gz)), gunzipSync(await readFile(p2.gz)), work, bump);
        const l = landerBytes(p1, p2);
        const z = zs[bump]!;
        rows.push(`| ${kib} KiB | ${(p1.size / g6).toFixed(3)} | ${p1.index!.members.length} | ${p1.indexBytes} B | ${bump} | ${l.total} (${l.index}, ${l.head}; ${l.ranges} in ${l.runs} runs) | ${l.requests} | ${z.total} (${z.control}, ${z.mode}) | ${(l.total / z.total).toFixed(3)} |`);
      }
    }
    console.log(`core: ${tree.files.length} files, gzip -6 ${g6} bytes\n\n${rows.join('\n')}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
