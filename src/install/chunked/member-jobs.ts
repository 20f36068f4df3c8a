/**
 * What an inflate worker does with one job: inflate a member and check its
 * length, SHA-256 and the tar headers inside it against the index, then
 * write its file pieces at their offsets; copy a piece from an installed
 * file; or hash a finished file against the index. Files are opened without
 * following a final symlink and never created here.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, openSync, readSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { ArchiveError, DigestMismatchError } from '../../base/errors.ts';
import type { CopyJob, HashJob, InflateJob, MemberJob, MemberSpec } from '../../../workers/inflate-protocol.ts';
import { BLOCK, parseHeader, parsePax, resolveGroup, paddedSize } from './tar-header.ts';

const WRITE = fsc.O_WRONLY | fsc.O_NOFOLLOW;
const READ = fsc.O_RDONLY | fsc.O_NOFOLLOW;

export function runJob(job: InflateJob): Promise<void> {
  if (job.type === 'member') return member(job);
  if (job.type === 'copy') return copy(job);
  return hash(job);
}

// Synchronous file I/O on purpose: this thread exists to do it, and a thread-pool round trip per
// 16 KiB piece left the workers idle half the time (bench/chunked-install.ts, --cpu-prof).
async function member(job: MemberJob): Promise<void> {
  const files = new Map<string, number>();
  try {
    for (const spec of job.members) memberOne(job.gz.subarray(spec.gzStart, spec.gzStart + spec.gzLength), spec, files);
  } finally {
    for (const fd of files.values()) closeSync(fd);
  }
}

function writeAllSync(fd: number, buf: Uint8Array, position: number): void {
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

function memberOne(gz: Uint8Array, job: MemberSpec, files: Map<string, number>): void {
  let raw: Buffer;
  try {
    // maxOutputLength: a member that inflates past its indexed length is refused at that length (a bomb costs nothing).
    raw = gunzipSync(gz, { maxOutputLength: Math.max(1, job.tarLength) });
  } catch (cause) {
    throw new ArchiveError('ERR_MEMBER_CORRUPT', `Cannot install member ${job.member}: it does not inflate to its ${job.tarLength} indexed bytes (${(cause as Error).message})`, { cause, data: { member: job.member } });
  }
  const actual = createHash('sha256').update(raw).digest('hex');
  if (raw.length !== job.tarLength || actual !== job.sha256) {
    throw new DigestMismatchError(`Cannot install member ${job.member}: its SHA-256 is ${actual} (${raw.length} bytes), the index says ${job.sha256} (${job.tarLength} bytes)`, { data: { member: job.member, expected: job.sha256, actual } });
  }
  for (const h of job.headers) checkHeader(raw, h, job.member);
  if (job.zerosFrom !== undefined) {
    for (let i = job.zerosFrom; i < raw.length; i++) {
      if (raw[i] !== 0) throw new ArchiveError('ERR_INDEX_MISMATCH', `Cannot install member ${job.member}: bytes follow the last entry the index lists (at ${i} in the member)`, { data: { member: job.member } });
    }
  }
  for (const p of job.pieces) {
    let fd = files.get(p.path);
    if (fd === undefined) files.set(p.path, (fd = openSync(p.path, WRITE)));
    writeAllSync(fd, raw.subarray(p.at, p.at + p.length), p.offset);
  }
}

function checkHeader(raw: Buffer, h: MemberSpec['headers'][number], member: number): void {
  const mismatch = (why: string) => new ArchiveError('ERR_INDEX_MISMATCH', `Cannot install: the tar header of entry ${JSON.stringify(h.name.slice(0, 256))} in member ${member} does not match the index (${why})`, { data: { member, entry: h.name.slice(0, 256) } });
  let at = h.at;
  let pax: Map<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  const end = h.at + h.blocks * BLOCK;
  for (let guard = 0; at < end && guard < 64; guard++) {
    const hd = parseHeader(raw.subarray(at, at + BLOCK));
    if (!hd) throw mismatch('bad checksum');
    if (hd.flag === 'x' || hd.flag === 'L' || hd.flag === 'K') {
      const body = raw.subarray(at + BLOCK, at + BLOCK + hd.size);
      if (hd.flag === 'x') pax = parsePax(body) ?? (() => { throw mismatch('malformed pax header'); })();
      else {
        const s = body.toString('utf8');
        const v = s.includes('\0') ? s.slice(0, s.indexOf('\0')) : s;
        if (hd.flag === 'L') longName = v;
        else longLink = v;
      }
      at += BLOCK + paddedSize(hd.size);
      continue;
    }
    if (at + BLOCK !== end) throw mismatch('header blocks');
    const g = resolveGroup(hd, pax, longName, longLink);
    const size = g.type === 'file' ? g.size : 0;
    if (g.name !== h.name || g.type !== h.type || (g.mode & 0o7777) !== h.mode || size !== h.size || ((h.type === 'symlink' || h.type === 'link') && g.linkname !== h.linkname)) {
      throw mismatch(`header says ${JSON.stringify({ name: g.name.slice(0, 256), type: g.type, size })}`);
    }
    return;
  }
  throw mismatch('no real header');
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    off += bytesWritten;
  }
}

async function copy(job: CopyJob): Promise<void> {
  const src = await open(job.from, READ);
  const dst = await open(job.to, WRITE).catch(async (err: unknown) => {
    await src.close();
    throw err;
  });
  try {
    const buf = Buffer.allocUnsafe(job.length);
    let got = 0;
    while (got < job.length) {
      const { bytesRead } = await src.read(buf, got, job.length - got, job.fromOffset + got);
      if (bytesRead === 0) throw new ArchiveError('ERR_REUSE_SHORT', `Cannot reuse ${job.from}: it ended at ${job.fromOffset + got}, before the ${job.length} bytes the index places there`, { data: { path: job.from } });
      got += bytesRead;
    }
    await writeAll(dst, buf, job.toOffset);
  } finally {
    await src.close();
    await dst.close();
  }
}

async function hash(job: HashJob): Promise<void> {
  const fd = openSync(job.path, READ);
  const h = createHash('sha256');
  let size = 0;
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, size);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  const actual = h.digest('hex');
  if (size !== job.size || actual !== job.sha256) {
    throw new DigestMismatchError(`Cannot install ${job.path}: its content hashes to ${actual} (${size} bytes), the index says ${job.sha256} (${job.size} bytes)`, { data: { path: job.path, expected: job.sha256, actual } });
  }
}
