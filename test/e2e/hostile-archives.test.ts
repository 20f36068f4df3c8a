/**
 * HOSTILE-INPUT.md, end to end: every row is an archive built here and
 * published as a new server-core version to a RUNNING `lander run` whose
 * stand-in server is healthy. Each case proves (test/helpers/hostile-harness.ts):
 * the install fails with an error naming the entry, in the `install.failed`
 * record and in /status lastErrors; everything under the work folder
 * (sentinels beside and outside the root, root itself: state.json, current,
 * store, staging) is byte-identical; the server's pid is unchanged and
 * healthy; and then a good version still lands. One daemon serves all rows.
 */
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTar, buildTarGz, packDir, paddedBody, paxRecord, rawHeader, type ArchiveEntry } from '../helpers/archive.ts';
import { SENTINEL, startHarness, type Harness } from '../helpers/hostile-harness.ts';
import { makeCoreTree, makeCudaTree } from '../helpers/release.ts';

let h: Harness;
beforeAll(async () => { h = await startHarness(); }, 90_000);
afterAll(async () => { await h?.close(); });

const T = 240_000;
const gz = (entries: ArchiveEntry[]) => buildTarGz(entries);
const file = (name: string, content: string | Buffer = 'x'): ArchiveEntry => ({ name, content });
const pax = (records: string) => Buffer.from(records);

describe('hostile archives against a running daemon (HOSTILE-INPUT.md)', () => {
  it('#1 ".." paths: ../moo, tmp/../../moo', async () => {
    await h.expectRejected(await gz([file('ok'), file('../moo')]), { code: 'ERR_ARCHIVE_PATH', entry: '../moo' });
    await h.expectRejected(await gz([file('tmp/../../moo')]), { code: 'ERR_ARCHIVE_PATH', entry: 'tmp/../../moo' });
    await h.landGood();
  }, T);

  it('#2 absolute paths, never stripped (CVE-2021-32804): /…/outside/moo, //…, ////abs', async () => {
    // Aimed at the sentinel: a stripping extractor would write root/…/outside/moo, a following one the sentinel itself.
    for (const name of [`${h.outside}/moo`, `/${h.outside}/moo`, '////abs']) {
      await h.expectRejected(await gz([file(name)]), { code: 'ERR_ARCHIVE_PATH', entry: name });
    }
    await h.landGood();
  }, T);

  it('#3 drive letters and backslashes (CVE-2021-37713, CVE-2021-37701): C:../x, x:..\\y, a\\..\\..\\moo', async () => {
    for (const name of ['C:../x', 'x:..\\y', 'a\\..\\..\\moo']) {
      await h.expectRejected(await gz([file(name)]), { code: 'ERR_ARCHIVE_PATH', entry: name });
    }
    await h.landGood();
  }, T);

  it('#4 absolute symlink moo -> outside/moo, then file moo (node-tar ghsa-8qq5)', async () => {
    await h.expectRejected(await gz([{ type: 'symlink', name: 'moo', linkname: `${h.outside}/moo` }, file('moo', 'pwned')]), { code: 'ERR_ARCHIVE_LINK', entry: 'moo' });
    await h.landGood();
  }, T);

  it('#5 absolute symlink to a folder, then a file through it: tmp -> outside, tmp/moo', async () => {
    await h.expectRejected(await gz([{ type: 'symlink', name: 'tmp', linkname: h.outside }, file('tmp/moo', 'pwned')]), { code: 'ERR_ARCHIVE_LINK', entry: 'tmp' });
    await h.landGood();
  }, T);

  it('#6 parent symlink: cur -> ., par -> cur/.., par/moo (CPython test_parent_symlink)', async () => {
    await h.expectRejected(await gz([{ type: 'symlink', name: 'cur', linkname: '.' }, { type: 'symlink', name: 'par', linkname: 'cur/..' }, file('par/moo')]), { code: 'ERR_ARCHIVE_LINK', entry: 'par' });
    await h.landGood();
  }, T);

  it('#7 symlink in dir path (CVE-2021-32803): dir d/x/, symlink d/x, file d/x/f; and a file through a link', async () => {
    await h.expectRejected(await gz([{ type: 'directory', name: 'd/x/' }, { type: 'symlink', name: 'd/x', linkname: '.' }, file('d/x/f')]), { code: 'ERR_ARCHIVE_PATH', entry: 'd/x' });
    await h.expectRejected(await gz([{ type: 'directory', name: 'd/' }, { type: 'symlink', name: 'e', linkname: 'd' }, file('e/f')]), { code: 'ERR_ARCHIVE_LINK', entry: 'e/f' });
    await h.landGood();
  }, T);

  it('#8 hard links out: to the sentinel, to /etc/passwd, to a/b/../../../../etc/passwd (CPython test_absolute_hardlink)', async () => {
    // A hard link to the sentinel would raise its link count, which the snapshot records.
    for (const target of [`${h.outside}/moo`, '/etc/passwd', 'a/b/../../../../etc/passwd']) {
      await h.expectRejected(await gz([file('a/b/c'), { type: 'link', name: 'pw', linkname: target }]), { code: 'ERR_ARCHIVE_LINK', entry: 'pw' });
    }
    await h.landGood();
  }, T);

  it('#9 no linking through a symlink: a/b/up -> ../.., a/b/escape -> up/.., x -> a/b/escape/f', async () => {
    await h.expectRejected(await gz([
      { type: 'symlink', name: 'a/b/up', linkname: '../..' },
      { type: 'symlink', name: 'a/b/escape', linkname: 'up/..' },
      { type: 'link', name: 'x', linkname: 'a/b/escape/f' },
    ]), { code: 'ERR_ARCHIVE_LINK', entry: 'a/b/escape' });
    await h.landGood();
  }, T);

  it('#10 self-referential hard link, and a hard link before its target: no crash, rejected', async () => {
    await h.expectRejected(await gz([{ type: 'link', name: 'h', linkname: 'h' }]), { code: 'ERR_ARCHIVE_LINK', entry: 'h' });
    await h.expectRejected(await gz([{ type: 'link', name: 'h', linkname: 'f' }, file('f')]), { code: 'ERR_ARCHIVE_LINK', entry: 'h' });
    await h.landGood();
  }, T);

  it('#11 names that collide after case folding (STRASSE/straße) or Unicode normalisation (ghsa-r6q2)', async () => {
    await h.expectRejected(await gz([file('lib/STRASSE'), file('lib/straße')]), { code: 'ERR_ARCHIVE_PATH', entry: 'lib/straße' });
    await h.expectRejected(await gz([file('caf\u00e9'), file('cafe\u0301')]), { code: 'ERR_ARCHIVE_PATH', entry: 'cafe\u0301' });
    await h.landGood();
  }, T);

  it('#12 special files: character device, block device, FIFO, unknown type (CPython test_special_files)', async () => {
    const cases: [ArchiveEntry, string][] = [
      [{ type: 'header', header: { name: 'dev/null2', type: 'character-device', devmajor: 1, devminor: 3 } }, 'dev/null2'],
      [{ type: 'header', header: { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 } }, 'sda'],
      [{ type: 'header', header: { name: 'fifo', type: 'fifo' } }, 'fifo'],
      [{ type: 'raw', data: rawHeader('odd', 'Z', 0) }, 'odd'],
    ];
    for (const [e, entry] of cases) await h.expectRejected(await gz([file('ok'), e]), { code: 'ERR_ARCHIVE_ENTRY_TYPE', entry });
    await h.landGood();
  }, T);

  it('#13 setuid, setgid, sticky and world-writable modes are clamped: the core lands with 0755/0644 (then read-only)', async () => {
    const dir = path.join(`${h.work}-src`, 'modes');
    await makeCoreTree(dir, 'modes', { smallFiles: 3 });
    await writeFile(path.join(dir, 'suid-tool'), '#!/bin/sh\n');
    await chmod(path.join(dir, 'suid-tool'), 0o6777);
    await writeFile(path.join(dir, 'world-writable.cfg'), 'x');
    await chmod(path.join(dir, 'world-writable.cfg'), 0o666);
    await mkdir(path.join(dir, 'shared'));
    await writeFile(path.join(dir, 'shared/f'), 'y');
    await chmod(path.join(dir, 'shared'), 0o3777);
    h.publishBody('modes', await packDir(dir));
    const mark = h.daemon.logs().length;
    await h.save({ core: 'modes' });
    await h.daemon.waitFor((r) => r.event === 'generation.landed', { since: mark, timeoutMs: 60_000 });
    const live = (await h.whoami()).cwd;
    expect(live).toMatch(/generations\/\d+$/);
    const modeOf = async (rel: string) => (await stat(path.join(live, rel))).mode & 0o7777;
    // Store files lose their write bits: 0755 -> 0555, 0644 -> 0444; folders stay 0755.
    expect(await modeOf('suid-tool')).toBe(0o555);
    expect(await modeOf('world-writable.cfg')).toBe(0o444);
    expect(await modeOf('shared')).toBe(0o755);
    expect(await modeOf('shared/f')).toBe(0o444);
    for (const rel of await readdir(live, { recursive: true })) {
      const m = (await stat(path.join(live, String(rel)))).mode;
      expect(m & 0o7000, String(rel)).toBe(0);
      expect(m & 0o022, String(rel)).toBe(0);
    }
    await h.landGood();
  }, T);

  it('#14 excessively deep (1,025 parts) or long (4,097 bytes) names (CVE-2024-28863)', async () => {
    const deep = `${Array(1024).fill('d').join('/')}/f`;
    const r1 = await h.expectRejected(await gz([file(deep)]), { code: 'ERR_ARCHIVE_LIMIT' });
    expect(r1.err.data).toMatchObject({ limit: 'maxPathDepth', value: 1025, max: 1024 });
    expect(r1.err.message).toMatch(/over limits\.maxPathDepth \(1024\)/);
    const long = `${'a'.repeat(4000)}/${'b'.repeat(96)}`;
    const r2 = await h.expectRejected(await gz([file(long)]), { code: 'ERR_ARCHIVE_LIMIT' });
    expect(r2.err.data).toMatchObject({ limit: 'maxPathLength', value: 4097, max: 4096 });
    // The name is shortened in the error, keeping its end and size.
    expect(r2.err.data!.entry).toMatch(/bbbb \(4097 bytes\)$/);
    await h.landGood();
  }, T);

  it('#15 symlink chains that expand past PATH_MAX (CPython test_realpath_limit_attack, CVE-2025-4517)', async () => {
    // CPython's shape: a -> D, D/b -> D, … then a link placed *through* them, and an escape from it.
    const steps = 'abcdefghijklmnop';
    const comp = 'd'.repeat(200);
    const entries: ArchiveEntry[] = [];
    let p = '';
    for (const s of steps) {
      entries.push({ type: 'directory', name: `${p}${comp}/` }, { type: 'symlink', name: `${p}${s}`, linkname: comp });
      p += `${comp}/`;
    }
    const linkpath = `${[...steps].join('/')}/${'l'.repeat(254)}`;
    entries.push({ type: 'symlink', name: linkpath, linkname: Array(16).fill('..').join('/') });
    entries.push({ type: 'symlink', name: 'escape', linkname: `${linkpath}/../` }, { type: 'link', name: 'flaglink', linkname: 'escape/flag' });
    const r = await h.expectRejected(await gz(entries), { code: 'ERR_ARCHIVE_LINK' });
    expect(r.err.message).toMatch(/written through the symlink "a"/);
    // A chain each of whose links is short, but whose expansion is not: l4 -> ./…/l5 -> … -> l9 -> x.
    const chain: ArchiveEntry[] = [{ type: 'symlink', name: 'l9', linkname: 'x' }];
    for (let i = 8; i >= 0; i--) chain.push({ type: 'symlink', name: `l${i}`, linkname: `${'./'.repeat(500)}l${i + 1}` });
    const r2 = await h.expectRejected(await gz(chain), { code: 'ERR_ARCHIVE_LINK', entry: 'l4' });
    expect(r2.err.message).toMatch(/expands past 4096 bytes/);
    await h.landGood();
  }, T);

  it('#16 gzip bomb: 128 MiB of zeros in a few hundred KB stops at the expansion ratio; a body past the declared size is cut', async () => {
    const bomb = gzipSync(await buildTar([{ name: 'zeros', content: Buffer.alloc(128 << 20) }]), { level: 9 });
    expect(bomb.length).toBeLessThan(1 << 20);
    const r = await h.expectRejected(bomb, { code: 'ERR_ARCHIVE_LIMIT', entry: 'zeros' });
    expect(r.err.data).toMatchObject({ limit: 'maxExpansionRatio', max: 50 });
    expect(r.err.message).toMatch(/over limits\.maxExpansionRatio \(50\)/);
    // The declared size: the component's "size" cuts a longer body while it streams.
    const big = await buildTarGz([file('blob', randomBytes(600_000).toString('base64'))], 1);
    const cfg = (v: string) => ({ components: { server: { version: v, url: `${h.server.origin}/download/v{version}/voicebox-server-cuda.tar.gz`, sha256Url: '{url}.sha256', size: 100_000 }, 'cuda-libs': { version: 'cu128-v1', url: `${h.server.origin}/download/vlibs/cuda-libs-{version}.tar.gz`, sha256Url: '{url}.sha256' } } });
    h.publishBody('capped', big);
    const r2 = await h.expectRejected({ core: 'capped', cuda: 'cu128-v1' }, { code: 'ERR_SIZE_LIMIT', extra: cfg('capped') });
    // Refused from its Content-Length here; test/e2e/archive-limits.test.ts streams one with none, forever.
    expect(r2.err.message).toMatch(/100000/);
    expect(r2.err.data).toMatchObject({ maxBytes: 100_000 });
    await h.landGood();
  }, T);

  it('#17 pax and GNU long-name headers over 1 MiB (node-tar maxMetaEntrySize)', async () => {
    const big = pax(paxRecord('comment', 'x'.repeat(1_200_000)));
    const r = await h.expectRejected(await gz([{ type: 'raw', data: rawHeader('PaxHeader/f', 'x', big.length) }, { type: 'raw', data: paddedBody(big) }, file('f')]), { code: 'ERR_ARCHIVE_LIMIT', entry: 'PaxHeader/f' });
    expect(r.err.data).toMatchObject({ limit: 'maxMetaEntrySize', max: 1 << 20 });
    const longName = Buffer.from(`${'n'.repeat(1_100_000)}\0`);
    const r2 = await h.expectRejected(await gz([{ type: 'raw', data: rawHeader('././@LongLink', 'L', longName.length) }, { type: 'raw', data: paddedBody(longName) }, { type: 'raw', data: rawHeader('short', '0', 0) }]), { code: 'ERR_ARCHIVE_LIMIT' });
    expect(r2.err.data).toMatchObject({ limit: 'maxMetaEntrySize' });
    expect(String(r2.err.data!.entry).length).toBeLessThan(400); // the 1.1 MB name is shortened in logs and /status
    await h.landGood();
  }, T);

  it('#18 a global pax header carrying path= (merged into the next pax header); a pax size of the wrong type', async () => {
    const g = pax(paxRecord('path', '../../evil'));
    const x = pax(paxRecord('mtime', '1700000000'));
    await h.expectRejected(await gz([
      { type: 'raw', data: rawHeader('pax_global_header', 'g', g.length) }, { type: 'raw', data: paddedBody(g) },
      { type: 'raw', data: rawHeader('PaxHeader/f', 'x', x.length) }, { type: 'raw', data: paddedBody(x) },
      file('f'),
    ]), { code: 'ERR_ARCHIVE_PATH', entry: '../../evil' });
    const s = pax(paxRecord('size', 'lots'));
    await h.expectRejected(await gz([file('first'), { type: 'raw', data: rawHeader('PaxHeader/f', 'x', s.length) }, { type: 'raw', data: paddedBody(s) }, file('f')]), { code: 'ERR_ARCHIVE_CORRUPT', entry: 'f' });
    await h.landGood();
  }, T);

  it('#19 truncated gzip stream, and a complete gzip of a truncated tar', async () => {
    const whole = await buildTar([file('first'), file('blob', randomBytes(100_000).toString('hex'))]);
    const cutGz = gzipSync(whole).subarray(0, -5000);
    await h.expectRejected(cutGz, { code: 'ERR_ARCHIVE_CORRUPT', entry: 'blob' });
    await h.expectRejected(gzipSync(whole.subarray(0, 512 * 40)), { code: 'ERR_ARCHIVE_CORRUPT', entry: 'blob' });
    await h.landGood();
  }, T);

  it('#20 links across archives (GNU tar CVE-2025-45582): each is fine alone, together they escape or collide', async () => {
    const cudaDir = path.join(`${h.work}-src`, 'cuda20');
    await makeCudaTree(cudaDir, { libBytes: 1024, libs: 1 });
    await mkdir(path.join(cudaDir, 'd1'));
    await symlink('..', path.join(cudaDir, 'd1/b'));
    h.publishBody('x20', await packDir(cudaDir), 'cuda-libs');
    const coreDir = path.join(`${h.work}-src`, 'core20');
    await makeCoreTree(coreDir, 'h20', { smallFiles: 2 });
    await mkdir(path.join(coreDir, 'd1'));
    await symlink('b/../..', path.join(coreDir, 'd1/a'));
    h.publishBody('h20', await packDir(coreDir));
    // Both archives verify and enter the store (inert: in no generation); the generation is refused.
    const r = await h.expectRejected({ core: 'h20', cuda: 'x20' }, { code: 'ERR_GENERATION_LINK', event: 'generation.failed', allowStoreGrowth: true });
    expect(r.err.data?.entry).toMatch(/^d1\/[ab]$/);
    expect(r.err.message).toMatch(/once the components are combined/);
    // A link planted by one archive and a file written under it by the other.
    const cudaDir2 = path.join(`${h.work}-src`, 'cuda20b');
    await makeCudaTree(cudaDir2, { libBytes: 1024, libs: 1 });
    await symlink('_internal', path.join(cudaDir2, 'x'));
    h.publishBody('x20b', await packDir(cudaDir2), 'cuda-libs');
    const coreDir2 = path.join(`${h.work}-src`, 'core20b');
    await makeCoreTree(coreDir2, 'h20b', { smallFiles: 2 });
    await mkdir(path.join(coreDir2, 'x'));
    await writeFile(path.join(coreDir2, 'x/f'), 'through the link');
    h.publishBody('h20b', await packDir(coreDir2));
    const r2 = await h.expectRejected({ core: 'h20b', cuda: 'x20b' }, { code: 'ERR_GENERATION_CONFLICT', event: 'generation.failed', allowStoreGrowth: true });
    expect(r2.err.message).toMatch(/"x"/);
    await h.landGood();
    // The refused entries were garbage-collected once the good version landed.
    expect((await readdir(path.join(h.root, 'store/cuda-libs'))).filter((n) => n.startsWith('x20'))).toEqual([]);
  }, T);

  it('#21 a symlink planted in staging while the archive streams: O_EXCL|O_NOFOLLOW, staging 0700', async () => {
    const body = await buildTarGz([file('a.bin', randomBytes(3 << 20)), file('sub/f', 'pwned'), file('z', 'pwned')], 1);
    h.publishBody('race', body);
    // The body stalls mid-way through a.bin; lander waits out its idle timeout and resumes with Range.
    h.server.misbehave('/download/vrace/voicebox-server-cuda.tar.gz', { stallAfter: 1 << 20 });
    const staging = path.join(h.root, 'staging');
    const planting = (async () => {
      let job: string | undefined;
      for (let i = 0; i < 400 && !job; i++) {
        job = (await readdir(staging))[0];
        if (!job || !(await stat(path.join(staging, job, 'a.bin')).catch(() => undefined))) job = undefined;
        if (!job) await new Promise((r) => setTimeout(r, 25));
      }
      if (!job) throw new Error('the staging folder never appeared');
      const dir = path.join(staging, job);
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      await symlink(h.outside, path.join(dir, 'sub'));
      await symlink(path.join(h.outside, 'moo'), path.join(dir, 'z'));
    })();
    const r = await h.expectRejected({ core: 'race', cuda: 'cu128-v1' }, { code: 'ERR_ARCHIVE_PATH', entry: 'sub/f' });
    await planting;
    expect(r.err.message).toMatch(/could not be created safely \(EEXIST\)/);
    await h.landGood();
  }, T);

  it('#22 containment by segments, not string prefix (tar-fs CVE-2025-59343): a link into root-evil beside root', async () => {
    // From root/staging/<job>/, ../../../root-evil is the root's sibling, whose path starts with the root's.
    await h.expectRejected(await gz([{ type: 'symlink', name: 'evil', linkname: '../../../root-evil' }, file('evil/moo', 'pwned')]), { code: 'ERR_ARCHIVE_LINK', entry: 'evil' });
    await h.expectRejected(await gz([{ type: 'link', name: 'evil', linkname: '../../../root-evil/moo' }]), { code: 'ERR_ARCHIVE_LINK', entry: 'evil' });
    await h.landGood();
  }, T);

  it('#23 an empty entry name, and a symlink named "." (cpython#149486)', async () => {
    await h.expectRejected(await gz([file('ok'), { type: 'raw', data: rawHeader('', '0', 0) }]), { code: 'ERR_ARCHIVE_PATH', entry: '' });
    // "." normalises to the root itself: only a folder may be that, never a link replacing it.
    await h.expectRejected(await gz([{ type: 'raw', data: rawHeader('.', '2', 0, { linkname: 'x' }) }]), { code: 'ERR_ARCHIVE_PATH', entry: '.' });
    await h.landGood();
  }, T);

  it('#24 more entries than limits.maxEntries; a body longer than its header says', async () => {
    const many = Array.from({ length: 60 }, (_, i) => file(`f${String(i).padStart(2, '0')}`));
    const r = await h.expectRejected(await gz(many), { code: 'ERR_ARCHIVE_LIMIT', entry: 'f50', extra: { limits: { maxEntries: 50 } } });
    expect(r.err.data).toMatchObject({ limit: 'maxEntries', value: 51, max: 50 });
    const longer = Buffer.concat([rawHeader('f', '0', 10), Buffer.alloc(1024, 0x41)]);
    await h.expectRejected(await gz([{ type: 'raw', data: longer }]), { code: 'ERR_ARCHIVE_CORRUPT', entry: 'f' });
    await h.landGood();
    expect(await readFile(path.join(h.outside, 'moo'), 'utf8')).toBe(SENTINEL);
  }, T);
  it('#26-#28, #30 sparse files, names that are not UTF-8, malformed pax records, v7 headers: refused naming the entry and why (issue 13)', async () => {
    const raw = (data: Buffer): ArchiveEntry => ({ type: 'raw', data });
    const sparse = pax(paxRecord('GNU.sparse.major', '1') + paxRecord('GNU.sparse.minor', '0') + paxRecord('GNU.sparse.name', 'lib/big.img'));
    const r1 = await h.expectRejected(await gz([raw(rawHeader('PaxHeader/f', 'x', sparse.length)), raw(paddedBody(sparse)), file('GNUSparseFile.0/big.img')]), { code: 'ERR_ARCHIVE_ENTRY_TYPE', entry: 'lib/big.img' });
    expect(r1.err.message).toMatch(/sparse file/);
    await h.expectRejected(await gz([file('ok'), raw(rawHeader('disk.img', 'S', 0))]), { code: 'ERR_ARCHIVE_ENTRY_TYPE', entry: 'disk.img' });
    const latin1 = Buffer.from(rawHeader('x', '0', 0));
    latin1.write('caf\xe9\0', 0, 'latin1');
    latin1.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of latin1) sum += b;
    latin1.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    const r2 = await h.expectRejected(await gz([raw(latin1)]), { code: 'ERR_ARCHIVE_PATH', entry: 'caf\\xe9' });
    expect(r2.err.message).toMatch(/not valid UTF-8/);
    const bad = Buffer.from('99 path=evil\n');
    const r3 = await h.expectRejected(await gz([raw(rawHeader('PaxHeader/f', 'x', bad.length)), raw(paddedBody(bad)), file('f')]), { code: 'ERR_ARCHIVE_CORRUPT', entry: 'PaxHeader/f' });
    expect(r3.err.message).toMatch(/malformed pax header/);
    const v7 = Buffer.from(rawHeader('old', '0', 0));
    v7.fill(0, 257, 265);
    v7.write('        ', 148, 'latin1');
    sum = 0;
    for (const b of v7) sum += b;
    v7.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    const r4 = await h.expectRejected(await gz([raw(v7)]), { code: 'ERR_ARCHIVE_FORMAT', entry: 'old' });
    expect(r4.err.message).toMatch(/pre-POSIX \(v7\)/);
    await h.landGood();
  }, T);
});
