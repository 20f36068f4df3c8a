/**
 * Installing chunked archives with their index, end to end: real `lander
 * pack` output served on loopback behind a lander manifest, real `lander
 * install` processes. A cold install fetches only closed ranges; a bump
 * through a server that cuts a range mid-way fetches a fraction of the
 * archive, hard-links unchanged files to the old store entry and leaves the
 * exact new tree, fetching of the index only its head and the parts the
 * kept index lacks; a flipped byte in a member, an index for another
 * archive, a flipped byte in the index's head, or in a page or leaf it
 * fetches, is refused with `current` untouched.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lstat, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, indexDigest, leafParts, parseHead } from '../../src/install/chunked/index-format.ts';
import { knownParts, planIndexRuns } from '../../src/install/chunked/index-fetch.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { complaints, landerArgv, parseLogs, runLander, startLander } from '../helpers/lander-cli.ts';
import { prng } from '../../src/base/prng.ts';
import { snapshotTree } from '../helpers/release.ts';
import { libBytes, makeSourceTree, textBytes } from '../helpers/source-tree.ts';

const LIB = 768 * 1024;
let work: string;
let server: TestServer;
let root: string;
let configPath: string;
const src: Record<string, string> = {};
const out: Record<string, string> = {};

const asset = (v: string) => `core-${v}.tar.gz`;

async function release(v: string, overrides: Record<string, Buffer>): Promise<void> {
  src[v] = path.join(work, `src-${v}`);
  out[v] = path.join(work, `out-${v}`);
  await makeSourceTree(src[v]!, { files: 40, libBytes: LIB, overrides });
  const rules = path.join(work, 'rules.json');
  await writeFile(rules, JSON.stringify({ default: 'server', components: { server: { asset: 'core-{version}.tar.gz' } }, rules: [{ prefix: '_internal/', component: 'server' }] }));
  const r = await runLander(['pack', src[v]!, '--out', out[v]!, '--rules', rules, '--component-version', `server=${v}`], { SOURCE_DATE_EPOCH: '1767225600' });
  expect(complaints(r)).toEqual([]);
  expect(r.code).toBe(0);
}

/** Publishes release `v` at /cur/ (archive, index and their sidecars) and points the config at it. */
async function publishRelease(v: string, patch: (files: Record<string, Buffer>) => void = () => {}): Promise<void> {
  const files: Record<string, Buffer> = {};
  for (const f of [asset(v), `${asset(v)}.sha256`, `${asset(v)}.index`, `${asset(v)}.index.sha256`]) files[f] = await readFile(path.join(out[v]!, f));
  patch(files);
  for (const [f, body] of Object.entries(files)) server.serve(`/cur/${f}`, body);
  await writeFile(configPath, JSON.stringify({
    root,
    components: { server: { version: v, url: server.url('/cur/core-{version}.tar.gz'), sha256Url: '{url}.sha256', index: { url: '{url}.index', sha256Url: '{url}.index.sha256' } } },
    download: { retries: 2, backoffInitial: '10ms', connectTimeout: '2s', idleTimeout: '2s' },
  }));
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-chunked-install-'));
  server = await startTestServer();
  await release('1.0', {});
  // The bump: three modules edited, 3 KB inserted at 40% of the launcher library.
  const lib = libBytes(LIB, 1);
  const at = Math.floor(lib.length * 0.4);
  await release('2.0', {
    'voicebox-server-cuda': Buffer.concat([lib.subarray(0, at), textBytes(3000, 9), lib.subarray(at)]),
    '_internal/pkg1/mod1.py': Buffer.from('__version__ = "2.0"\n'),
    '_internal/pkg2/mod7.py': textBytes(9000, 77),
    '_internal/pkg4/mod19.py': textBytes(100, 78),
  });
  root = path.join(work, 'root');
  configPath = path.join(work, 'lander.json');
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

const install = () => runLander(['install', '--config', configPath]);

describe('chunked install', () => {
  it('installs cold from ranges only, and keeps the index beside the store entry', async () => {
    await publishRelease('1.0');
    const r = await install();
    expect(complaints(r)).toEqual([]);
    expect(r.code, r.stdout).toBe(0);
    expect(await snapshotTree(path.join(root, 'current')), r.stdout).toEqual(await snapshotTree(src['1.0']!));
    const st = server.stats(`/cur/${asset('1.0')}`);
    // One run: the metadata members between files ride along instead of splitting it into a range per file.
    expect(st.ranges.length).toBe(1);
    expect(st.ranges.every((h) => /^bytes=\d+-\d+$/.test(h ?? ''))).toBe(true);
    const plan = r.logs.find((l) => l.event === 'install.chunked-plan');
    // The whole install ran in a worker thread, not on the main thread that supervises the server.
    expect(plan).toMatchObject({ links: 0, copies: 0, worker: true });
    // What bench/delta.ts counts is what is served: the planned runs, and the whole index (nothing kept yet).
    expect(plan!.runs).toBe(1);
    expect(st.bytesSent).toBe(plan!.fetchBytes);
    expect(server.stats(`/cur/${asset('1.0')}.index`).bytesSent).toBe((await stat(path.join(out['1.0']!, `${asset('1.0')}.index`))).size);
    const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
    const entry = state.entries[0].dir as string;
    expect((await readFile(path.join(root, `${entry}.index`))).equals(await readFile(path.join(out['1.0']!, `${asset('1.0')}.index`)))).toBe(true);
  });

  it('bumps through a server that cuts a range mid-way: a fraction of the archive, unchanged files hard-linked, the exact new tree', async () => {
    await publishRelease('2.0');
    const p = `/cur/${asset('2.0')}`;
    server.misbehave(p, { cutAfter: 20 }); // the first run is longer: a member alone is a gzip header and trailer (18 bytes) and its data
    const r = await install();
    // The cut is said (a warning, install.chunked-retry), and nothing else.
    expect(complaints(r).filter((l) => !l.includes('"event":"install.chunked-retry"'))).toEqual([]);
    expect(r.code).toBe(0);
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(await snapshotTree(src['2.0']!));
    expect(r.logs.some((l) => l.event === 'install.chunked-retry')).toBe(true);
    const size = (await stat(path.join(out['2.0']!, asset('2.0')))).size;
    const sent = server.stats(p).bytesSent;
    // The index: its head and only the pages and leaves 1.0's kept index lacks, as bench/delta.ts counts them.
    const idx2 = await readFile(path.join(out['2.0']!, `${asset('2.0')}.index`));
    const head = parseHead(idx2);
    const known = knownParts([await readFile(path.join(out['1.0']!, `${asset('1.0')}.index`))]);
    const runs = [...planIndexRuns(head.pages, known), ...planIndexRuns(leafParts(head, head.pages.map((x) => idx2.subarray(x.offset, x.offset + x.length))), known)];
    expect(server.stats(`${p}.index`).bytesSent).toBe(head.headEnd + runs.reduce((n, x) => n + x.end - x.start, 0));
    expect(server.stats(`${p}.index`).bytesSent).toBeLessThan(idx2.length / 2);
    expect(sent).toBeLessThan(size * 0.25);
    const plan = r.logs.find((l) => l.event === 'install.chunked-plan')!;
    expect(plan.links as number).toBeGreaterThan(30);
    expect(plan.copies as number).toBeGreaterThan(0);
    const result = r.logs.find((l) => l.event === 'install.result')!;
    expect(result.reusedBytes as number).toBeGreaterThan(LIB);
    expect(result.downloadedBytes as number).toBeLessThan(size * 0.25);
    // An unchanged module is the old store entry's inode.
    const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
    const [e1, e2] = state.entries.map((e: { dir: string }) => e.dir) as string[];
    const same = '_internal/pkg0/mod0.py';
    expect((await lstat(path.join(root, e1!, same))).ino).toBe((await lstat(path.join(root, e2!, same))).ino);
    // Nothing of the resume files is left once the entry is committed.
    const index = decodeIndex(await readFile(path.join(out['2.0']!, `${asset('2.0')}.index`)));
    for (const leftover of ['', '.json', '.tree', '.prev']) await expect(stat(path.join(root, 'downloads', `${index.archiveSha256}.chunks${leftover}`))).rejects.toThrow();
  });

  describe('refuses, leaving current untouched', () => {
    let before: Awaited<ReturnType<typeof snapshotTree>>;
    beforeAll(async () => {
      before = await snapshotTree(path.join(root, 'current'));
      await release('3.0', { 'voicebox-server-cuda': libBytes(LIB, 33), '_internal/pkg3/mod3.py': textBytes(5000, 333) });
    });
    const refused = async (...codes: string[]) => {
      const r = await install();
      expect(r.code).not.toBe(0);
      const failed = r.logs.find((l) => l.event === 'install.failed');
      expect(codes, JSON.stringify(failed)).toContain((failed?.err as { code?: string } | undefined)?.code);
      expect(await snapshotTree(path.join(root, 'current'))).toEqual(before);
    };

    it('a flipped byte in a member', async () => {
      const index = decodeIndex(await readFile(path.join(out['3.0']!, `${asset('3.0')}.index`)));
      // A member the bump must fetch: the one holding the new library's first bytes.
      const lib = index.entries.find((e) => e.name === 'voicebox-server-cuda')!;
      const m = index.members.find((x) => x.tarOffset <= lib.dataOffset && lib.dataOffset < x.tarOffset + x.tarLength)!;
      await publishRelease('3.0', (f) => {
        const body = Buffer.from(f[asset('3.0')]!);
        body[m.gzOffset + Math.floor(m.gzLength / 2)]! ^= 0x40;
        f[asset('3.0')] = body;
      });
      // Inflate fails (a corrupt deflate stream) or the SHA-256 does not match: either way refused.
      await refused('ERR_DIGEST_MISMATCH', 'ERR_MEMBER_CORRUPT');
    });

    it('an index for another archive', async () => {
      // The origin serves 2.0's index under 3.0's name, with a sidecar that matches it.
      await publishRelease('3.0', (f) => {
        const other = f[`${asset('3.0')}.index`] = readFileSync(path.join(out['2.0']!, `${asset('2.0')}.index`));
        f[`${asset('3.0')}.index.sha256`] = Buffer.from(`${indexDigest(other)}  ${asset('3.0')}.index\n`);
      });
      await refused('ERR_INDEX_MISMATCH');
    });

    it('an index whose head does not match its digest', async () => {
      await publishRelease('3.0', (f) => {
        const idx = Buffer.from(f[`${asset('3.0')}.index`]!);
        idx[20]! ^= 1; // inside the archive's digest in the head
        f[`${asset('3.0')}.index`] = idx;
      });
      await refused('ERR_DIGEST_MISMATCH');
    });

    /** A page or leaf of 3.0's index that neither kept index (1.0, 2.0) holds, so the install must fetch it. */
    const fetchedPart = async (kind: 'page' | 'leaf') => {
      const idx = await readFile(path.join(out['3.0']!, `${asset('3.0')}.index`));
      const known = knownParts([await readFile(path.join(out['1.0']!, `${asset('1.0')}.index`)), await readFile(path.join(out['2.0']!, `${asset('2.0')}.index`))]);
      const head = parseHead(idx);
      const parts = kind === 'page' ? head.pages : leafParts(head, head.pages.map((x) => idx.subarray(x.offset, x.offset + x.length)));
      return parts.find((x) => !known.has(x.sha256))!;
    };
    for (const kind of ['page', 'leaf'] as const) {
      it(`a flipped byte in a ${kind} of the index that the install fetches`, async () => {
        const part = await fetchedPart(kind);
        await publishRelease('3.0', (f) => {
          const idx = Buffer.from(f[`${asset('3.0')}.index`]!);
          idx[part.offset + part.length - 1]! ^= 1;
          f[`${asset('3.0')}.index`] = idx;
        });
        await refused('ERR_INDEX_INVALID');
      });
    }
  });

  it('a kill campaign during a delta install: every kill leaves the old tree or the new one, verified members are not fetched again, the last run finishes exactly', async () => {
    const old = await snapshotTree(path.join(root, 'current'));
    const want = await snapshotTree(src['3.0']!);
    await publishRelease('3.0');
    // Slow enough that a seeded instant lands mid-fetch (about 2 s for the bump).
    const p = `/cur/${asset('3.0')}`;
    server.serve(p, await readFile(path.join(out['3.0']!, asset('3.0'))), { rate: 300_000 });
    const rand = prng(16);
    let resumed = 0;
    for (let round = 0; round < 5; round++) {
      const child = startLander(['install', '--config', configPath]);
      const at = 200 + Math.floor(rand() * 1500);
      const timer = setTimeout(() => child.child.kill('SIGKILL'), at);
      const r = await child.finished();
      clearTimeout(timer);
      resumed += parseLogs(r.stdout).filter((l) => l.event === 'install.chunked-resume').length;
      const now = await snapshotTree(path.join(root, 'current'));
      expect([old, want]).toContainEqual(now);
      if (r.code === 0) break;
    }
    const before = server.stats(p).bytesSent;
    const r = await install();
    expect(r.code, r.stdout).toBe(0);
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(want);
    resumed += r.logs.filter((l) => l.event === 'install.chunked-resume').length;
    expect(resumed).toBeGreaterThan(0);
    // The last run fetches only what no earlier run verified: its ranges plus the members it kept make the plan.
    const plan = r.logs.find((l) => l.event === 'install.chunked-plan')!;
    const kept = r.logs.filter((l) => l.event === 'install.chunked-resume').reduce((n, l) => n + (l.bytes as number), 0);
    expect(server.stats(p).bytesSent - before + kept).toBeLessThanOrEqual(plan.fetchBytes as number);
  });

  it('falls back to the one pass when the server ignores ranges', async () => {
    await release('4.0', { '_internal/pkg0/mod0.py': textBytes(4000, 400) });
    await publishRelease('4.0');
    server.misbehave(`/cur/${asset('4.0')}`, { ignoreRange: true, times: 100 });
    const r = await install();
    expect(r.code, r.stdout).toBe(0);
    expect(r.logs.some((l) => l.event === 'install.index-unavailable')).toBe(true);
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(await snapshotTree(src['4.0']!));
  });

  it('a cold install checks the tar headers in the metadata members between the ones it fetches: a flipped byte there is refused', async () => {
    const saved = root;
    root = path.join(work, 'root-cold');
    try {
      const index = decodeIndex(await readFile(path.join(out['1.0']!, `${asset('1.0')}.index`)));
      const ms = index.members;
      // A metadata member (a file's padding and the next file's header) between two data members: fetched with them, hashless.
      const k = ms.findIndex((m, j) => m.sha256 === '' && j > 0 && ms[j - 1]!.sha256 !== '' && ms[j + 1]?.sha256 !== '' && ms[j + 1] !== undefined);
      expect(k).toBeGreaterThan(0);
      await publishRelease('1.0', (f) => {
        const body = Buffer.from(f[asset('1.0')]!);
        body[ms[k]!.gzOffset + ms[k]!.gzLength - 3]! ^= 0x01; // the gzip trailer's CRC-32: only inflating the member sees it
        f[asset('1.0')] = body;
      });
      const r = await install();
      expect(r.code).not.toBe(0);
      const failed = r.logs.find((l) => l.event === 'install.failed');
      expect(['ERR_MEMBER_CORRUPT', 'ERR_INDEX_MISMATCH'], JSON.stringify(failed)).toContain((failed?.err as { code?: string } | undefined)?.code);
      await expect(lstat(path.join(root, 'current'))).rejects.toThrow();
    } finally {
      root = saved;
    }
  });

  it('makes the tree durable before it is visible: a syncfs of the built tree comes before its rename into staging (strace)', async () => {
    const haveStrace = spawnSync('strace', ['-V']).status === 0;
    if (!haveStrace && process.env.CI === 'true') throw new Error('needs strace (Debian package strace)');
    if (!haveStrace) return console.warn('chunked durability: skipped, strace is not installed');
    const saved = root;
    root = path.join(work, 'root-durable');
    try {
      await publishRelease('1.0');
      const trace = path.join(work, 'durable.trace');
      const { cmd, argv } = landerArgv(['install', '--config', configPath]);
      // Not spawnSync: the test's own HTTP server must keep answering meanwhile.
      const child = spawn('strace', ['-f', '-qq', '-y', '-e', 'trace=syncfs,rename,renameat,renameat2', '-o', trace, cmd, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
      const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(status, stderr).toBe(0);
      const lines = (await readFile(trace, 'utf8')).split('\n');
      const synced = lines.findIndex((l) => /syncfs\(\d+<[^>]*\.chunks\.tree>\)/.test(l));
      const renamed = lines.findIndex((l) => /rename.*\.chunks\.tree".*staging/.test(l));
      expect(synced, lines.filter((l) => /syncfs|chunks/.test(l)).join('\n')).toBeGreaterThanOrEqual(0);
      expect(renamed).toBeGreaterThan(synced);
      expect(await snapshotTree(path.join(root, 'current'))).toEqual(await snapshotTree(src['1.0']!));
    } finally {
      root = saved;
    }
  });
});
