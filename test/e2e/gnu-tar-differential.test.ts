/**
 * Issue 13: lander's tree is exactly the tree GNU tar extracts (as an
 * unprivileged uid) from the same archive, or lander refuses naming the entry
 * and why. Each shape below is built by the test: by GNU tar in its formats,
 * by Python's tarfile, or by hand for what tools will not write. Each has its
 * expected outcome pinned: 'same' (lander installs, GNU tar exits 0, the trees
 * are equal) or the refusal's reason.
 *
 * LANDER_DIFF_TABLE=1 prints the table of shapes and outcomes.
 */
import { spawnSync } from 'node:child_process';
import { chmod, link, mkdir, open, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { END, fileEntry, gnuExtract, haveGnuTar, header, landerExtract, landerExtractOffThread, pad, paxEntry, rec, tempDir } from '../helpers/tar-oracle.ts';

const CAN = haveGnuTar();
if (!CAN && process.env.CI === 'true') throw new Error('gnu-tar-differential needs GNU tar and setpriv run as root (Debian packages tar, util-linux)');

let work: string;
const basic = () => path.join(work, 'basic');
const long = () => path.join(work, 'long');
const sparse = () => path.join(work, 'sparse');

async function makeTrees(): Promise<void> {
  const b = basic();
  await mkdir(path.join(b, 'bin'), { recursive: true });
  await mkdir(path.join(b, 'lib'));
  await mkdir(path.join(b, 'data/nested/deep'), { recursive: true });
  await writeFile(path.join(b, 'bin/server'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await writeFile(path.join(b, 'lib/libx.so.1'), Buffer.alloc(70_000, 7));
  await symlink('libx.so.1', path.join(b, 'lib/libx.so'));
  await writeFile(path.join(b, 'data/empty'), '');
  await writeFile(path.join(b, 'data/block'), Buffer.alloc(512, 0x42));
  await writeFile(path.join(b, 'data/nested/deep/c.txt'), 'deep\n');
  await link(path.join(b, 'bin/server'), path.join(b, 'data/server-hard'));
  const l = long();
  const dir = `l${'x'.repeat(120)}`;
  await mkdir(path.join(l, dir), { recursive: true });
  await writeFile(path.join(l, dir, 'f'.repeat(150)), 'long\n');
  await symlink(`${dir}/${'f'.repeat(150)}`, path.join(l, 'long-link'));
  await writeFile(path.join(l, 'café-straße-日本.txt'), 'utf8\n');
  await link(path.join(l, dir, 'f'.repeat(150)), path.join(l, 'hard-to-long'));
  const s = sparse();
  await mkdir(s);
  const fh = await open(path.join(s, 'disk.img'), 'w');
  await fh.truncate(3 << 20);
  await fh.write(Buffer.alloc(1024, 0x53), 0, 1024, 1 << 20);
  await fh.close();
  await writeFile(path.join(s, 'plain'), 'p\n');
}

function gnuTar(dir: string, ...args: string[]): Buffer {
  const r = spawnSync('tar', ['--sort=name', '--mtime=@1700000000', '-C', dir, ...args, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Python's tarfile: `fmt` is GNU_FORMAT, PAX_FORMAT or USTAR_FORMAT; `extra` runs with `t` (the TarFile) open. */
function pyTar(dir: string, fmt: string, extra = '', encoding = 'utf-8'): Buffer {
  const script = `
import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.${fmt}, encoding=${JSON.stringify(encoding)}, errors='surrogateescape') as t:
    if ${JSON.stringify(dir)}: t.add(${JSON.stringify(dir)}, arcname='.')
${extra.split('\n').map((x) => `    ${x}`).join('\n')}
sys.stdout.buffer.write(buf.getvalue())
`;
  const r = spawnSync('python3', ['-c', script], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python3 tarfile ${fmt}: ${r.stderr}`);
  return r.stdout;
}

const file = (n: string | Buffer, c: string, extra = {}) => fileEntry(n, c, extra);
const two = [file('a', 'first\n'), file('b', 'second\n')];

type Expect = 'same' | RegExp;
interface Shape { name: string; build: () => Buffer; expect: Expect; gz?: (tar: Buffer) => Buffer }

const shapes: Shape[] = [
  // GNU tar's own formats
  { name: 'GNU tar --format=gnu', build: () => gnuTar(basic(), '--format=gnu'), expect: 'same' },
  { name: 'GNU tar --format=oldgnu', build: () => gnuTar(basic(), '--format=oldgnu'), expect: 'same' },
  { name: 'GNU tar --format=posix (pax)', build: () => gnuTar(basic(), '--format=posix'), expect: 'same' },
  { name: 'GNU tar --format=ustar', build: () => gnuTar(basic(), '--format=ustar'), expect: 'same' },
  { name: 'GNU tar --format=v7', build: () => gnuTar(basic(), '--format=v7'), expect: /pre-POSIX \(v7\) tar header/ },
  { name: 'GNU tar gnu, long names and link targets (L/K)', build: () => gnuTar(long(), '--format=gnu'), expect: 'same' },
  { name: 'GNU tar posix, long names, UTF-8 names', build: () => gnuTar(long(), '--format=posix'), expect: 'same' },
  { name: 'GNU tar gnu -b1 (no record padding)', build: () => gnuTar(basic(), '--format=gnu', '-b', '1'), expect: 'same' },
  { name: 'GNU tar --sparse, old GNU (S)', build: () => gnuTar(sparse(), '--format=gnu', '--sparse'), expect: /GNU sparse file; lander does not extract sparse files/ },
  { name: 'GNU tar --sparse pax 0.0', build: () => gnuTar(sparse(), '--format=posix', '--sparse', '--sparse-version=0.0'), expect: /sparse file \(GNU.sparse format 0.0\)/ },
  { name: 'GNU tar --sparse pax 0.1', build: () => gnuTar(sparse(), '--format=posix', '--sparse', '--sparse-version=0.1'), expect: /sparse file \(GNU.sparse format 0.1\)/ },
  { name: 'GNU tar --sparse pax 1.0', build: () => gnuTar(sparse(), '--format=posix', '--sparse', '--sparse-version=1.0'), expect: /sparse file \(GNU.sparse format 1.0\)/ },
  { name: 'GNU tar, two archives concatenated (cat a b)', build: () => Buffer.concat([gnuTar(basic(), '--format=gnu'), gnuTar(long(), '--format=gnu')]), expect: 'same' },
  // Python's tarfile
  { name: 'Python tarfile GNU_FORMAT', build: () => pyTar(basic(), 'GNU_FORMAT'), expect: 'same' },
  { name: 'Python tarfile PAX_FORMAT', build: () => pyTar(basic(), 'PAX_FORMAT'), expect: 'same' },
  { name: 'Python tarfile USTAR_FORMAT', build: () => pyTar(basic(), 'USTAR_FORMAT'), expect: 'same' },
  { name: 'Python tarfile GNU_FORMAT, long names', build: () => pyTar(long(), 'GNU_FORMAT'), expect: 'same' },
  { name: 'Python tarfile PAX_FORMAT, long names', build: () => pyTar(long(), 'PAX_FORMAT'), expect: 'same' },
  { name: 'Python tarfile PAX with a global header (comment)', build: () => pyTarGlobal(), expect: 'same' },
  { name: 'Python tarfile GNU, Latin-1 name', build: () => pyTar('', 'GNU_FORMAT', "i = tarfile.TarInfo('caf\\udce9'); t.addfile(i, io.BytesIO(b''))"), expect: /not valid UTF-8/ },
  { name: 'Python tarfile PAX, name not UTF-8 (hdrcharset=BINARY)', build: () => pyTar('', 'PAX_FORMAT', "i = tarfile.TarInfo('\\udcc0\\udcaf.txt'); t.addfile(i, io.BytesIO(b''))"), expect: /not valid UTF-8/ },
  // hand-built
  { name: 'no end-of-archive blocks', build: () => Buffer.concat(two), expect: 'same' },
  { name: 'no end blocks, last body a whole block', build: () => Buffer.concat([file('a', 'x'), file('b', 'y'.repeat(1024))]), expect: 'same' },
  { name: 'one lone zero block, then garbage', build: () => Buffer.concat([...two, Buffer.alloc(512), Buffer.alloc(700, 0x41)]), expect: 'same' },
  { name: 'data after the end marker (a second archive)', build: () => Buffer.concat([...two, END, file('evil', 'after the end\n'), END]), expect: 'same' },
  { name: 'empty pax header', build: () => Buffer.concat([paxEntry(''), file('a', 'A'), END]), expect: 'same' },
  { name: 'empty pax header before the last entry, no end blocks', build: () => Buffer.concat([file('a', 'A'), paxEntry(''), file('b', 'B')]), expect: 'same' },
  { name: 'pax path and linkpath', build: () => Buffer.concat([paxEntry(rec('path', 'p/renamed')), file('ignored', 'R'), paxEntry(rec('linkpath', 'renamed')), header({ name: 'p/ln', flag: '2', linkname: 'wrong' }), END]), expect: 'same' },
  { name: 'pax size overrides the header', build: () => Buffer.concat([paxEntry(rec('size', '5')), header({ name: 'f', size: 0 }), pad('12345'), END]), expect: 'same' },
  { name: 'global pax header with comment only', build: () => Buffer.concat([paxEntry(rec('comment', 'git sha'), 'g', 'pax_global_header'), file('a', 'A'), END]), expect: 'same' },
  { name: 'malformed pax: length past the end', build: () => Buffer.concat([paxEntry('99 path=evil\n'), file('f', 'x'), END]), expect: /malformed pax header: .*past the end/ },
  { name: 'malformed pax: length too short', build: () => Buffer.concat([paxEntry('9 path=evil\n'), file('f', 'x'), END]), expect: /malformed pax header: .*newline/ },
  { name: 'malformed pax: no "="', build: () => Buffer.concat([paxEntry('10 pathxx\n'), file('f', 'x'), END]), expect: /malformed pax header: .*key=value/ },
  { name: 'malformed pax: not a number', build: () => Buffer.concat([paxEntry('x9 path=a\n'), file('f', 'x'), END]), expect: /malformed pax header: .*length field/ },
  { name: 'pax path with a NUL', build: () => Buffer.concat([paxEntry(rec('path', Buffer.from('a\0b'))), file('f', 'x'), END]), expect: /NUL byte/ },
  { name: 'pax size not a number', build: () => Buffer.concat([paxEntry(rec('size', 'lots')), file('f', 'x'), END]), expect: /pax size record that is not a number/ },
  { name: 'non-UTF-8 name: Latin-1', build: () => Buffer.concat([file(Buffer.from('caf\xe9', 'latin1'), 'x'), END]), expect: /not valid UTF-8/ },
  { name: 'non-UTF-8 name: cp866', build: () => Buffer.concat([file(Buffer.from([0x8f, 0xe0, 0xa8, 0xa2, 0xa5, 0xe2]), 'x'), END]), expect: /not valid UTF-8/ },
  { name: 'non-UTF-8 name: EUC-JP', build: () => Buffer.concat([file(Buffer.from([0xc6, 0xfc, 0xcb, 0xdc]), 'x'), END]), expect: /not valid UTF-8/ },
  { name: 'non-UTF-8 name: KOI8-R', build: () => Buffer.concat([file(Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]), 'x'), END]), expect: /not valid UTF-8/ },
  { name: 'two names that collapse to one under U+FFFD', build: () => Buffer.concat([file(Buffer.from([0x61, 0xe9]), '1'), file(Buffer.from([0x61, 0xe8]), '2'), END]), expect: /not valid UTF-8/ },
  { name: 'non-UTF-8 symlink target', build: () => Buffer.concat([header({ name: 'ln', flag: '2', linkname: Buffer.from([0x61, 0xff]) }), END]), expect: /link target that is not valid UTF-8/ },
  { name: 'v7 header (hand-built)', build: () => Buffer.concat([header({ name: 'old', magic: 'v7', size: 2 }), pad('v7'), END]), expect: /pre-POSIX \(v7\)/ },
  { name: 'old GNU header, hand-built', build: () => Buffer.concat([header({ name: 'g', magic: 'gnu', size: 1 }), pad('g'), END]), expect: 'same' },
  { name: 'ustar prefix field (name split)', build: () => Buffer.concat([header({ name: 'file.txt', prefix: 'some/deep/dir', size: 1 }), pad('p'), END]), expect: 'same' },
  { name: 'GNU long name (L) by hand', build: () => Buffer.concat([header({ name: '././@LongLink', flag: 'L', size: 201 }), pad(`${'n'.repeat(200)}\0`), header({ name: 'short', size: 1 }), pad('L'), END]), expect: 'same' },
  { name: 'GNU long link (K) by hand', build: () => Buffer.concat([file('t', 'T'), header({ name: '././@LongLink', flag: 'K', size: 151 }), pad(`${'./'.repeat(74)}t\0`), header({ name: 'ln', flag: '2', linkname: 'short' }), END]), expect: 'same' },
  { name: 'hard link to an earlier file', build: () => Buffer.concat([file('t', 'T'), header({ name: 'h', flag: '1', linkname: 't' }), END]), expect: 'same' },
  { name: 'hard link before its target', build: () => Buffer.concat([header({ name: 'h', flag: '1', linkname: 't' }), file('t', 'T'), END]), expect: /not a file extracted earlier/ },
  { name: 'odd modes: 4755, 0000, 0010, 0777, 6711', build: () => Buffer.concat([file('suid', 's', { mode: 0o4755 }), file('none', 'n', { mode: 0 }), file('gx', 'g', { mode: 0o010 }), file('all', 'a', { mode: 0o777 }), file('sg', 'z', { mode: 0o6711 }), END]), expect: 'same' },
  { name: 'folder with sticky, world-writable mode', build: () => Buffer.concat([header({ name: 'tmp/', flag: '5', mode: 0o1777 }), file('tmp/f', 'x'), END]), expect: 'same' },
  { name: 'typeflag NUL (old regular file)', build: () => Buffer.concat([header({ name: 'nul', flag: '\0', size: 1 }), pad('n'), END]), expect: 'same' },
  { name: 'contiguous file (7)', build: () => Buffer.concat([header({ name: 'c', flag: '7', size: 1 }), pad('c'), END]), expect: 'same' },
  { name: 'dumpdir (D)', build: () => Buffer.concat([header({ name: 'dd/', flag: 'D', size: 0 }), END]), expect: /GNU dumpdir/ },
  { name: 'volume label (V)', build: () => Buffer.concat([header({ name: 'label', flag: 'V' }), file('a', 'A'), END]), expect: /GNU volume label/ },
  { name: 'Solaris ACL (A)', build: () => Buffer.concat([header({ name: 'acl', flag: 'A', size: 3 }), pad('acl'), END]), expect: /Solaris ACL/ },
  { name: 'bad checksum', build: () => Buffer.concat([file('a', 'A'), header({ name: 'b', sum: 1234 }), END]), expect: /bad checksum/ },
  { name: 'unreadable size field', build: () => setFieldSum(header({ name: 'f' }), 124, '0000zz00000\0'), expect: /unreadable size field/ },
  { name: 'truncated inside a body', build: () => fileEntry('blob', 'x'.repeat(2000)).subarray(0, 1500), expect: /cut short/ },
  { name: 'file named "x/" (typeflag 0)', build: () => Buffer.concat([header({ name: 'x/', size: 0 }), END]), expect: /whose name ends in "\/"/ },
  // found by the fuzz campaign (seed 7): each was installed while GNU tar failed or read it otherwise
  { name: 'fuzz 7000081: folder mode 0234, then a hard link into it', build: () => Buffer.concat([header({ name: 'bin/', flag: '5', mode: 0o234 }), file('bin/run', 'r'), header({ name: 'lib/', flag: '5' }), header({ name: 'lib/h', flag: '1', linkname: 'bin/run' }), END]), expect: /folder with mode 0234/ },
  { name: 'fuzz 7000443: pax mtime not a number', build: () => Buffer.concat([paxEntry(rec('mtime', '|700000000.5')), file('f', 'x'), END]), expect: /"mtime" record is not a number/ },
  { name: 'fuzz 7000754: GNU long name without its NUL', build: () => Buffer.concat([header({ name: '././@LongLink', flag: 'L', size: 20 }), pad(`${'n'.repeat(30)}\0`), file('short', 'L'), END]), expect: /does not end with a NUL byte/ },
  { name: 'fuzz 21000813: a NUL in a pax key', build: () => Buffer.concat([paxEntry(Buffer.concat([rec('atime', '1'), Buffer.from('8 a\0b=1\n')])), file('f', 'x'), END]), expect: /NUL byte in its key/ },
  { name: 'gzip: two members (multi-member)', build: () => Buffer.concat(two), gz: (t) => Buffer.concat([gzipSync(t.subarray(0, 1024)), gzipSync(Buffer.concat([t.subarray(1024), END]))]), expect: 'same' },
];

/** Python's PAX_FORMAT with a global header (`pax_headers`), as release tooling writes a comment. */
function pyTarGlobal(): Buffer {
  const r = spawnSync('python3', ['-c', `
import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT, pax_headers={'comment': 'release 1.2'}) as t:
    t.add(${JSON.stringify(basic())}, arcname='.')
sys.stdout.buffer.write(buf.getvalue())
`]);
  if (r.status !== 0) throw new Error(`python3 tarfile: ${r.stderr}`);
  return r.stdout;
}
function setFieldSum(h: Buffer, off: number, value: string): Buffer {
  h.write(value, off, 'latin1');
  h.write('        ', 148, 'latin1');
  let s = 0;
  for (const c of h) s += c;
  h.write(`${s.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return Buffer.concat([h, END]);
}

const table: string[] = [];

describe.skipIf(!CAN)('lander against GNU tar (run as uid 65534): the same tree or a refusal naming the entry', () => {
  beforeAll(async () => {
    work = await tempDir('lander-gnudiff-');
    await chmod(work, 0o711); // uid 65534 must reach its own folder inside
    await makeTrees();
  });
  afterAll(async () => {
    if (process.env.LANDER_DIFF_TABLE) console.log(`| # | shape | GNU tar | lander |\n|---|---|---|---|\n${table.join('\n')}`);
    await rm(work, { recursive: true, force: true });
  });

  it(`has at least 40 shapes (${shapes.length})`, () => {
    expect(shapes.length).toBeGreaterThanOrEqual(40);
  });

  it.each(shapes.map((s, i) => [i + 1, s.name, s] as const))('%i %s', async (i, _name, shape) => {
    const tar = shape.build();
    const gz = shape.gz ? shape.gz(tar) : gzipSync(tar);
    const gnu = await gnuExtract(gz, work);
    const lander = await landerExtract(gz, work);
    // A large archive is inflated in the hash worker instead: the same bytes must give the same outcome, word for word.
    expect(await landerExtractOffThread(gz, work)).toEqual(lander);
    const gnuCell = `exit ${gnu.status}, ${Object.keys(gnu.tree).length} paths${gnu.stderr ? `: ${gnu.stderr.trim().split('\n')[0]!.replace(/\|/g, '\\|').slice(0, 90)}` : ''}`;
    table.push(`| ${i} | ${shape.name} | ${gnuCell} | ${lander.ok ? 'same tree' : `refused (${lander.code}): ${lander.message.replace(/^Cannot extract oracle: /, '').replace(/\|/g, '\\|').slice(0, 140)}`} |`);
    if (shape.expect === 'same') {
      expect(lander.ok ? 'installed' : lander.message).toBe('installed');
      expect(gnu.status, gnu.stderr).toBe(0);
      expect((lander as { tree: Record<string, string> }).tree).toEqual(gnu.tree);
      expect(Object.keys(gnu.tree).length).toBeGreaterThan(0);
    } else {
      expect(lander.ok, 'lander installed a shape it must refuse').toBe(false);
      const msg = (lander as { message: string }).message;
      expect(msg).toMatch(shape.expect);
      expect(msg).toMatch(/entry "[^"]*"|the archive /); // names the entry, or says it concerns the whole archive
    }
  });
});
