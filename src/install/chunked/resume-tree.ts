/**
 * Where a chunked install builds its tree, and how a later run takes up
 * what an earlier, interrupted one verified, without keeping a second copy
 * of any fetched byte.
 *
 * The tree is built in `<partPath>.tree` (not under the store's `staging/`,
 * which a restart empties) and renamed to the staging folder once complete.
 * `<partPath>.json` lists (as ranges) the members whose bytes were checked (SHA-256
 * against the index) and written into that tree. A later run moves the old
 * tree aside to `<partPath>.prev`, builds a fresh tree, and copies the
 * listed members' file pieces from the old one: the old tree is only ever
 * read, never trusted. Every file that receives such a piece is hashed
 * against the index's content hash before the install is done; a file that
 * fails has its members fetched after all.
 */
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { ReusePlan } from './reuse-plan.ts';

export interface ResumePaths {
  /** The tree being built. */
  tree: string;
  /** An interrupted run's tree, read from while resuming. */
  prev: string;
  /** The verified members: `{ archive, in, ranges }`. */
  journal: string;
}

export function resumePaths(partPath: string): ResumePaths {
  return { tree: `${partPath}.tree`, prev: `${partPath}.prev`, journal: `${partPath}.json` };
}

/**
 * The members an earlier run of this archive verified, their bytes now in
 * the old tree at `prev`; none (and no `prev`, no `tree`) when there is no
 * such run. The journal says which folder holds them (`in`), so a run
 * killed while resuming, before it listed anything of its own, still
 * resumes from the older tree.
 */
export async function takeUpEarlierRun(p: ResumePaths, archiveSha256: string): Promise<number[]> {
  let listed: number[] = [];
  let where: unknown;
  try {
    const j = JSON.parse(await readFile(p.journal, 'utf8')) as { archive?: unknown; ranges?: unknown; in?: unknown };
    if (j.archive === archiveSha256 && Array.isArray(j.ranges)) listed = fromRanges(j.ranges);
    where = j.in;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
  const isDir = (d: string) => stat(d).then((s) => s.isDirectory(), () => false);
  if (listed.length > 0 && where === 'prev' && await isDir(p.prev)) {
    await rm(p.tree, { recursive: true, force: true });
    return listed;
  }
  await rm(p.prev, { recursive: true, force: true });
  if (listed.length > 0 && where !== 'prev' && await isDir(p.tree)) {
    await rename(p.tree, p.prev);
    await writeJournal(p, archiveSha256, toRanges(listed), 'prev');
    return listed;
  }
  await rm(p.tree, { recursive: true, force: true });
  return [];
}

/**
 * Records that the members of `ranges` (`[first, end)`) are verified and
 * written in `where` (a cold install's members are one range). Replaced by a
 * rename, not fsynced: the tree's bytes are not fsynced either, and a file
 * a journal overstates fails its hash on resume and is fetched again.
 */
export async function writeJournal(p: ResumePaths, archiveSha256: string, ranges: [number, number][], where: 'tree' | 'prev'): Promise<void> {
  const tmp = `${p.journal}.tmp`;
  await writeFile(tmp, JSON.stringify({ archive: archiveSha256, in: where, ranges }) + '\n');
  await rename(tmp, p.journal);
}

/** Members as a bitmap: adding is O(1), listing them as ranges one linear pass (no sort on the event loop). */
export class MemberSet {
  private readonly bits: Uint8Array;
  constructor(members: number) {
    this.bits = new Uint8Array(members);
  }

  add(m: number): void {
    this.bits[m] = 1;
  }

  ranges(): [number, number][] {
    const out: [number, number][] = [];
    const b = this.bits;
    for (let m = 0; m < b.length; m++) {
      if (!b[m]) continue;
      const from = m;
      while (m + 1 < b.length && b[m + 1]) m++;
      out.push([from, m + 1]);
    }
    return out;
  }
}

export function toRanges(members: Iterable<number>): [number, number][] {
  const out: [number, number][] = [];
  for (const m of [...members].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last[1] === m) last[1]++;
    else if (!last || last[1] < m) out.push([m, m + 1]);
  }
  return out;
}

/** The members of `[first, end)` ranges; anything malformed is dropped (and then fetched). */
export function fromRanges(ranges: unknown[]): number[] {
  const out: number[] = [];
  for (const r of ranges) {
    if (!Array.isArray(r) || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) || r[0] < 0 || r[1] - r[0] > 10_000_000) continue;
    for (let m = r[0] as number; m < (r[1] as number); m++) out.push(m);
  }
  return out;
}

/** Drops the tree, the old tree and the journal (once the entry is committed, or the archive is no longer wanted). */
export async function removeResume(p: ResumePaths): Promise<void> {
  await rm(p.tree, { recursive: true, force: true });
  await rm(p.prev, { recursive: true, force: true });
  await rm(p.journal, { force: true });
  await rm(`${p.journal}.tmp`, { force: true });
}

/** A run of resumed bytes of one file: copy `length` bytes at `offset` from the old tree's file to the new one's. */
export interface ResumeCopy {
  path: string;
  offset: number;
  length: number;
  /** The members whose pieces this run holds: fetched instead if the copy fails. */
  members: number[];
}

/** The copies that rebuild `members`' file pieces from the old tree, neighbouring pieces of one file merged up to `maxBytes`. */
export function resumeCopies(pieces: ReusePlan['pieces'], members: readonly number[], maxBytes: number): ResumeCopy[] {
  const all: { path: string; offset: number; length: number; member: number }[] = [];
  for (const m of members) for (const p of pieces.get(m) ?? []) all.push({ path: p.path, offset: p.offset, length: p.length, member: m });
  all.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.offset - b.offset));
  const out: ResumeCopy[] = [];
  for (const p of all) {
    const last = out[out.length - 1];
    if (last && last.path === p.path && last.offset + last.length === p.offset && last.length + p.length <= maxBytes) {
      last.length += p.length;
      if (last.members[last.members.length - 1] !== p.member) last.members.push(p.member);
    } else out.push({ path: p.path, offset: p.offset, length: p.length, members: [p.member] });
  }
  return out;
}
