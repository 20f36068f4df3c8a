/**
 * Installing chunked archives with their index, end to end: real `lander
 * pack` output served on loopback behind a lander manifest, real `lander
 * install` processes. A cold install fetches only closed ranges; a bump
 * through a server that cuts a range mid-way fetches a fraction of the
 * archive, hard-links unchanged files to the old store entry and leaves the
 * exact new tree; a flipped byte in a member, an index for another archive
 * and an index whose digest does not match are refused with `current` untouched.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lstat, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex } from '../../src/install/chunked/index-format.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { complaints, parseLogs, runLander, startLander } from '../helpers/lander-cli.ts';
import { prng } from '../helpers/crash-campaign.ts';
import { snapshotTree } from '../helpers/release.ts';
import { libBytes, makeSourceTree, textBytes } from '../helpers/source-tree.ts';

const LIB = 768 * 1024;
let work: string;
let server: TestServer;
let root: string;
let configPath: string;
const src: Record<string, string> = {};
const out: Record<string, string> = {};

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
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
    expect(st.ranges.length).toBeGreaterThan(0);
    expect(st.ranges.every((h) => /^bytes=\d+-\d+$/.test(h ?? ''))).toBe(true);
    const plan = r.logs.find((l) => l.event === 'install.chunked-plan');
    expect(plan).toMatchObject({ links: 0, copies: 0 });
    const state = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
    const entry = state.entries[0].dir as string;
    expect((await readFile(path.join(root, `${entry}.index`))).equals(await readFile(path.join(out['1.0']!, `${asset('1.0')}.index`)))).toBe(true);
  });

  it('bumps through a server that cuts a range mid-way: a fraction of the archive, unchanged files hard-linked, the exact new tree', async () => {
    await publishRelease('2.0');
    const p = `/cur/${asset('2.0')}`;
    server.misbehave(p, { cutAfter: 50 }); // every run is longer: a member alone is a gzip header, a tar header and data
    const r = await install();
    // The cut is said (a warning, install.chunked-retry), and nothing else.
    expect(complaints(r).filter((l) => !l.includes('"event":"install.chunked-retry"'))).toEqual([]);
    expect(r.code).toBe(0);
    expect(await snapshotTree(path.join(root, 'current'))).toEqual(await snapshotTree(src['2.0']!));
    expect(r.logs.some((l) => l.event === 'install.chunked-retry')).toBe(true);
    const size = (await stat(path.join(out['2.0']!, asset('2.0')))).size;
    const sent = server.stats(p).bytesSent;
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
        f[`${asset('3.0')}.index.sha256`] = Buffer.from(`${sha256(other)}  ${asset('3.0')}.index\n`);
      });
      await refused('ERR_INDEX_MISMATCH');
    });

    it('an index whose digest does not match', async () => {
      await publishRelease('3.0', (f) => {
        const idx = Buffer.from(f[`${asset('3.0')}.index`]!);
        idx[idx.length - 5]! ^= 1;
        f[`${asset('3.0')}.index`] = idx;
      });
      await refused('ERR_DIGEST_MISMATCH');
    });
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
});
