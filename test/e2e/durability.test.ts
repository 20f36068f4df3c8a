/**
 * Issue 13, item 8: durable before visible. The extraction (what the install
 * worker runs) ends with a flush of the tree's file system, and its result
 * is not "done" until that flush succeeded: with syncfs failing (strace
 * fault injection, EIO), the extraction fails instead of reporting a tree
 * that a power cut could leave empty. Runs the compiled dist/ in a Node child
 * (also when the suite itself runs under Deno).
 */
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { END, fileEntry, tempDir } from '../helpers/tar-oracle.ts';

const HAVE_STRACE = spawnSync('strace', ['-V']).status === 0;
if (!HAVE_STRACE && process.env.CI === 'true') throw new Error('durability.test.ts needs strace (Debian package strace)');
const EXTRACT = fileURLToPath(new URL('../../dist/src/install/extract.js', import.meta.url));

let work: string;
beforeAll(async () => {
  work = await tempDir('lander-durable-');
  await writeFile(path.join(work, 'a.tar.gz'), gzipSync(Buffer.concat([fileEntry('lib/a.so', 'x'.repeat(5000)), fileEntry('b', 'b'), END])));
  await writeFile(path.join(work, 'run.mjs'), `
import { readFileSync } from 'node:fs';
const { startExtraction } = await import(${JSON.stringify(EXTRACT)});
const gz = readFileSync(process.argv[2]);
const limits = { maxEntries: 100, maxExpansionRatio: 200, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 1024, maxExtractedBytes: 1 << 20 };
const x = await startExtraction({ component: 'c', stagingDir: process.argv[3], limits, archiveBytes: () => gz.length, ...(process.argv[4] ? { flush: process.argv[4] } : {}) });
x.input.end(gz);
x.finished.then(() => console.log(JSON.stringify({ ok: x.files.map((f) => f.path) })), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));
`);
});
afterAll(async () => { await rm(work, { recursive: true, force: true }); });

function run(staging: string, straceArgs: string[], flush?: string) {
  const r = spawnSync('strace', ['-f', '-qq', '-y', '-o', path.join(work, 'trace'), ...straceArgs, 'node', path.join(work, 'run.mjs'), path.join(work, 'a.tar.gz'), staging, ...(flush ? [flush] : [])], { encoding: 'utf8', timeout: 60_000 });
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()!), trace: spawnSync('cat', [path.join(work, 'trace')], { encoding: 'utf8' }).stdout };
}

describe.skipIf(!HAVE_STRACE)('durable before visible (issue 13 #8)', () => {
  it('by default fsyncs every file (write-behind) and every folder before the extraction counts as done', () => {
    const staging = path.join(work, 's0');
    const { out, trace } = run(staging, ['-e', 'trace=fsync,syncfs']);
    expect(out).toEqual({ ok: ['lib', 'lib/a.so', 'b'] });
    // Two threads fsync at once, so strace may split a call ("<unfinished ...>", "<... fsync resumed>").
    const synced = [...trace.matchAll(/fsync\(\d+<([^>]+)>/g)].map((m) => m[1]);
    expect(trace).not.toMatch(/= -1 /);
    for (const p of ['lib/a.so', 'b', 'lib', '']) expect(synced).toContain(path.join(staging, p));
    expect(trace).not.toMatch(/syncfs\(/); // the .part (kept for resume) is not forced to disk
  });

  it('fails the extraction when a file\'s fsync fails (EIO): nothing unflushed is reported done', () => {
    const { out } = run(path.join(work, 's0e'), ['-e', 'trace=fsync', '-e', 'inject=fsync:error=EIO:when=1']);
    expect(out.code).toBe('ERR_FLUSH');
    expect(out.message).toMatch(/Cannot make the extracted tree durable: fsync of .* failed: .*(EIO|i\/o error)/i);
  });

  it('with flush syncfs, flushes the tree\'s file system before the extraction counts as done', () => {
    const { out, trace } = run(path.join(work, 's1'), ['-e', 'trace=syncfs'], 'syncfs');
    expect(out).toEqual({ ok: ['lib', 'lib/a.so', 'b'] });
    expect(trace).toMatch(/syncfs\(\d+<[^>]*>\)\s+= 0/);
  });

  it('fails the extraction when the flush fails (syncfs EIO): nothing unflushed is reported done', () => {
    const { out } = run(path.join(work, 's2'), ['-e', 'trace=syncfs', '-e', 'inject=syncfs:error=EIO'], 'syncfs');
    expect(out.code).toBe('ERR_FLUSH');
    expect(out.message).toMatch(/Cannot make the extracted tree durable: .*Input\/output error/);
  });
});
