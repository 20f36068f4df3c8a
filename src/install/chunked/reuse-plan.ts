/**
 * What a chunked install takes locally and what it fetches (pure, no I/O;
 * the counterpart of electron-updater's `computeOperations`). Given the new
 * archive's index, its planned tree, and the installed store entries (their
 * file records and, where kept, their indexes):
 *
 * - a file whose content hash, size and mode equal an installed file's
 *   becomes a hard link to it;
 * - a member whose SHA-256 equals a member of an installed entry's index,
 *   and whose file-data pieces sit inside files of that entry at the same
 *   places, is copied from those files;
 * - every other member that holds data of a file still to write is fetched,
 *   in runs of neighbouring members (one Range request each).
 */
import type { FileRecord } from '../../../workers/protocol.ts';
import { checkEntryPath } from '../entry-path.ts';
import { memberAt, type ChunkIndex } from './index-format.ts';
import type { TreePlan } from './tree-plan.ts';

/** An installed store entry, as the planner sees it. */
export interface LocalSource {
  /** Absolute folder of the store entry. */
  dir: string;
  files: readonly FileRecord[];
  /** The entry's chunk index, when it was installed from a chunked archive. */
  index?: ChunkIndex;
  /** That index's file: a new index's pages and leaves with the same hashes are taken from it, not fetched. */
  indexFile?: Buffer;
}

export interface LinkOp {
  path: string;
  from: { dir: string; path: string };
  size: number;
}

export interface CopyOp {
  member: number;
  from: { dir: string; path: string; offset: number };
  to: { path: string; offset: number };
  length: number;
}

export interface FetchRun {
  /** Byte range in the `.tar.gz`, end exclusive. */
  start: number;
  end: number;
  members: number[];
}

export interface ReusePlan {
  links: LinkOp[];
  copies: CopyOp[];
  /** Member indices to fetch, ascending. */
  fetch: number[];
  /** For each fetched member, the file pieces it carries: `length` bytes from `at` in the member go to `offset` in `path`. */
  pieces: Map<number, { path: string; at: number; offset: number; length: number }[]>;
  runs: FetchRun[];
  /** File bytes taken from the store (links and copies). */
  reusedBytes: number;
  /** Archive bytes the runs fetch. */
  fetchBytes: number;
}

export interface ReusePlanOptions {
  /** Members at most this many bytes apart share one run (the gap is fetched and dropped). @default 0 */
  maxGap?: number;
}

/** One piece of a file's data inside a member. */
interface Piece {
  path: string;
  /** Tar offset of the piece. */
  tar: number;
  /** Offset in the file. */
  offset: number;
  length: number;
}

export function computeReusePlan(index: ChunkIndex, tree: TreePlan, sources: readonly LocalSource[], opts: ReusePlanOptions = {}): ReusePlan {
  const maxGap = opts.maxGap ?? 0;
  // Installed files by content; a hard-link record resolves to the file it links to.
  const byContent = new Map<string, { dir: string; path: string }>();
  for (const s of sources) {
    for (const f of s.files) {
      if (f.type !== 'file' || !f.sha256) continue;
      const key = `${f.sha256}:${f.size}:${f.mode}`;
      if (!byContent.has(key)) byContent.set(key, { dir: s.dir, path: f.path });
    }
  }
  const links: LinkOp[] = [];
  const pieces = new Map<number, Piece[]>(); // member → the pieces of files still to write
  for (const op of tree.ops) {
    if (op.kind !== 'file' || op.size === 0) continue;
    const from = byContent.get(`${op.sha256}:${op.size}:${op.mode}`);
    if (from) {
      links.push({ path: op.path, from, size: op.size });
      continue;
    }
    const e = index.entries[op.entry]!;
    const end = e.dataOffset + e.size;
    for (let m = memberAt(index.members, e.dataOffset); m < index.members.length && index.members[m]!.tarOffset < end; m++) {
      const mem = index.members[m]!;
      const a = Math.max(e.dataOffset, mem.tarOffset);
      const b = Math.min(end, mem.tarOffset + mem.tarLength);
      let list = pieces.get(m);
      if (!list) pieces.set(m, (list = []));
      list.push({ path: op.path, tar: a, offset: a - e.dataOffset, length: b - a });
    }
  }
  // Installed members by uncompressed hash.
  const bySha = new Map<string, { src: LocalSource; member: number }>();
  for (const s of sources) s.index?.members.forEach((m, i) => { if (!bySha.has(m.sha256)) bySha.set(m.sha256, { src: s, member: i }); });
  const copies: CopyOp[] = [];
  const fetch: number[] = [];
  const fetched: ReusePlan['pieces'] = new Map();
  for (const m of [...pieces.keys()].sort((x, y) => x - y)) {
    const mem = index.members[m]!;
    const found = bySha.get(mem.sha256);
    const mapped = found ? mapPieces(m, pieces.get(m)!, mem.tarOffset, found.src, found.member) : undefined;
    if (mapped) copies.push(...mapped);
    else {
      fetch.push(m);
      fetched.set(m, pieces.get(m)!.map((p) => ({ path: p.path, at: p.tar - mem.tarOffset, offset: p.offset, length: p.length })));
    }
  }
  const runs: FetchRun[] = [];
  for (const m of fetch) {
    const mem = index.members[m]!;
    const last = runs[runs.length - 1];
    // Metadata members (headers, padding) between two fetched ones ride along: a cold install is then one run, not one per file.
    if (last && (mem.gzOffset - last.end <= maxGap || onlyMetadataBetween(index.members, last.members[last.members.length - 1]!, m))) {
      last.end = mem.gzOffset + mem.gzLength;
      last.members.push(m);
    } else runs.push({ start: mem.gzOffset, end: mem.gzOffset + mem.gzLength, members: [m] });
  }
  return {
    links,
    copies,
    fetch,
    pieces: fetched,
    runs,
    reusedBytes: links.reduce((n, l) => n + l.size, 0) + copies.reduce((n, c) => n + c.length, 0),
    fetchBytes: runs.reduce((n, r) => n + r.end - r.start, 0),
  };
}

/** True when every member strictly between `a` and `b` is a metadata member (no hash, no file data). */
export function onlyMetadataBetween(members: readonly { sha256: string }[], a: number, b: number): boolean {
  for (let i = a + 1; i < b; i++) if (members[i]!.sha256 !== '') return false;
  return true;
}

/**
 * The copies that rebuild `pieces` of new member `m` from old member
 * `oldM` of `src`: equal bytes, so each piece sits at the same distance from
 * the member's start; it must lie inside one installed file's data there.
 */
const fileSets = new WeakMap<LocalSource, Set<string>>();

function mapPieces(m: number, pieces: readonly Piece[], tarOffset: number, src: LocalSource, oldM: number): CopyOp[] | undefined {
  const idx = src.index!;
  const old = idx.members[oldM]!;
  let files = fileSets.get(src);
  if (!files) fileSets.set(src, (files = new Set(src.files.filter((f) => f.type === 'file').map((f) => f.path))));
  const out: CopyOp[] = [];
  for (const p of pieces) {
    const at = old.tarOffset + (p.tar - tarOffset);
    const e = findEntry(idx, at);
    if (!e || e.type !== 'file' || at + p.length > e.dataOffset + e.size) return undefined;
    const name = checkEntryPath(e.name);
    if (!name.ok || !files.has(name.path)) return undefined;
    out.push({ member: m, from: { dir: src.dir, path: name.path, offset: at - e.dataOffset }, to: { path: p.path, offset: p.offset }, length: p.length });
  }
  return out;
}

/** The entry whose data region holds tar offset `at`, if any. */
function findEntry(idx: ChunkIndex, at: number): ChunkIndex['entries'][number] | undefined {
  const es = idx.entries;
  let lo = 0;
  let hi = es.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (es[mid]!.headerOffset <= at) lo = mid;
    else hi = mid - 1;
  }
  const e = es[lo];
  return e && at >= e.dataOffset && at < e.dataOffset + e.size ? e : undefined;
}

/**
 * `members` (ascending) with the metadata members that lie only between two
 * of them: those ride along in the same range (a cold install is one run, not
 * one per file), and their tar headers are checked against the index.
 */
export function withMetadataBetween(ms: readonly { sha256: string }[], members: readonly number[]): number[] {
  const out: number[] = [];
  for (const m of members) {
    const prev = out[out.length - 1];
    if (prev !== undefined && m > prev + 1 && onlyMetadataBetween(ms, prev, m)) for (let i = prev + 1; i < m; i++) out.push(i);
    out.push(m);
  }
  return out;
}
