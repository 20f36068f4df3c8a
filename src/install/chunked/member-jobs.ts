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
  const raws = inflateAll(job);
  const writes: { path: string; raw: Buffer; at: number; offset: number; length: number }[] = [];
  job.members.forEach((spec, i) => {
    const raw = raws[i]!;
    for (const h of spec.headers) checkHeader(raw, h, spec.member);
    if (spec.zerosFrom !== undefined) {
      for (let j = spec.zerosFrom; j < raw.length; j++) {
        if (raw[j] !== 0) throw new ArchiveError('ERR_INDEX_MISMATCH', `Cannot install member ${spec.member}: bytes follow the last entry the index lists (at ${j} in the member)`, { data: { member: spec.member } });
      }
    }
    // Neighbouring pieces of one file (consecutive members inflated into one buffer) become one write.
    for (const p of spec.pieces) {
      const last = writes[writes.length - 1];
      if (last && last.path === p.path && last.raw.buffer === raw.buffer && last.raw.byteOffset + last.at + last.length === raw.byteOffset + p.at && last.offset + last.length === p.offset) last.length += p.length;
      else writes.push({ path: p.path, raw, at: p.at, offset: p.offset, length: p.length });
    }
  });
  const files = new Map<string, number>();
  try {
    for (const w of writes) {
      let fd = files.get(w.path);
      if (fd === undefined) files.set(w.path, (fd = openSync(w.path, WRITE)));
      writeAllSync(fd, new Uint8Array(w.raw.buffer, w.raw.byteOffset + w.at, w.length), w.offset);
    }
  } finally {
    for (const fd of files.values()) closeSync(fd);
  }
}

function writeAllSync(fd: number, buf: Uint8Array, position: number): void {
  for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

/**
 * Every member of the job inflated and checked (length and SHA-256 against
 * the index), as views of one buffer when they are neighbours: one inflate
 * call and one allocation for the batch, the output cut at the indexed
 * lengths, each cut hashed. Whatever the gzip framing inside, the bytes used
 * are exactly the indexed members' bytes or nothing. If the batch fails, the
 * members are inflated one by one to name the one at fault.
 */
function inflateAll(job: MemberJob): Buffer[] {
  const ms = job.members;
  const total = ms.reduce((n, s) => n + s.tarLength, 0);
  const neighbours = ms.every((s, i) => i === 0 || s.gzStart === ms[i - 1]!.gzStart + ms[i - 1]!.gzLength);
  if (ms.length > 1 && neighbours) {
    try {
      const first = ms[0]!;
      const last = ms[ms.length - 1]!;
      // maxOutputLength: a batch that inflates past its indexed length is refused at that length (a bomb costs nothing).
      const raw = gunzipSync(job.gz.subarray(first.gzStart, last.gzStart + last.gzLength), { maxOutputLength: total, chunkSize: total + 1024 });
      if (raw.length === total) {
        const out: Buffer[] = [];
        let at = 0;
        for (const s of ms) {
          const cut = raw.subarray(at, at + s.tarLength);
          // A metadata member (no hash) holds no file data; its headers are checked by the caller.
          if (s.sha256 === '' ? s.pieces.length > 0 : createHash('sha256').update(cut).digest('hex') !== s.sha256) break;
          out.push(cut);
          at += s.tarLength;
        }
        if (out.length === ms.length) return out;
      }
    } catch { /* named below, member by member */ }
  }
  return ms.map((s) => inflateOne(job.gz.subarray(s.gzStart, s.gzStart + s.gzLength), s));
}

function inflateOne(gz: Uint8Array, job: MemberSpec): Buffer {
  let raw: Buffer;
  try {
    // maxOutputLength: a member that inflates past its indexed length is refused at that length (a bomb costs nothing).
    raw = gunzipSync(gz, { maxOutputLength: Math.max(1, job.tarLength) });
  } catch (cause) {
    throw new ArchiveError('ERR_MEMBER_CORRUPT', `Cannot install member ${job.member}: it does not inflate to its ${job.tarLength} indexed bytes (${(cause as Error).message})`, { cause, data: { member: job.member } });
  }
  const actual = createHash('sha256').update(raw).digest('hex');
  // A metadata member (no hash in the index) holds no file data: its headers and end marker are checked below, nothing of it is written.
  if (raw.length !== job.tarLength || (job.sha256 === '' ? job.pieces.length > 0 : actual !== job.sha256)) {
    throw new DigestMismatchError(`Cannot install member ${job.member}: its SHA-256 is ${actual} (${raw.length} bytes), the index says ${job.sha256} (${job.tarLength} bytes)`, { data: { member: job.member, expected: job.sha256, actual } });
  }
  return raw;
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
