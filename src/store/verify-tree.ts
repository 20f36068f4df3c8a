/**
 * Compares a tree on disk with the per-file records it was built from:
 * every path's type, size, mode, link target and SHA-256. Reports every
 * difference instead of stopping at the first. Reads every file, so it runs
 * in the verify worker, never on the main thread.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { mapLimit } from '../base/map-limit.ts';
import type { Difference, ExpectedFile, VerifyReport } from './verify-report.ts';

interface Actual {
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mode: number;
  link?: string;
}

/** The mode a record should have in a generation: the store drops write bits from files; folders are 0755. */
export function expectedMode(rec: ExpectedFile): number | undefined {
  if (rec.type === 'symlink') return undefined; // a symlink's own mode means nothing on Linux
  if (rec.type === 'directory') return 0o755;
  return rec.mode & ~0o222;
}

async function walk(dir: string): Promise<Map<string, Actual>> {
  const out = new Map<string, Actual>();
  const visit = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      const st = await lstat(path.join(dir, r));
      const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other';
      out.set(r, { type, size: st.size, mode: st.mode & 0o7777, ...(type === 'symlink' ? { link: await readlink(path.join(dir, r)) } : {}) });
      if (type === 'directory') await visit(r);
    }
  };
  await visit('');
  return out;
}

async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h, { signal });
  return h.digest('hex');
}

/** Verifies `dir` against `expected`; directories listed by several components are one path. */
export async function verifyTree(dir: string, expected: ExpectedFile[], opts: { concurrency?: number; signal?: AbortSignal } = {}): Promise<VerifyReport> {
  const actual = await walk(dir);
  const want = new Map<string, ExpectedFile>();
  for (const rec of expected) if (!want.has(rec.path) || rec.type !== 'directory') want.set(rec.path, rec);
  const differences: Difference[] = [];
  const toHash: { rec: ExpectedFile; abs: string }[] = [];
  let unhashed = 0;
  for (const [p, rec] of want) {
    const got = actual.get(p);
    const base = { path: p, component: rec.component };
    if (!got) {
      differences.push({ ...base, kind: 'missing', expected: rec.type });
      continue;
    }
    const wantType = rec.type === 'link' ? 'file' : rec.type; // a hard link is a plain file in the farm
    if (got.type !== wantType) {
      differences.push({ ...base, kind: 'type', expected: wantType, actual: got.type });
      continue;
    }
    const mode = expectedMode(rec);
    if (mode !== undefined && got.mode !== mode) differences.push({ ...base, kind: 'mode', expected: octal(mode), actual: octal(got.mode) });
    if (wantType === 'symlink') {
      if (got.link !== rec.linkname) differences.push({ ...base, kind: 'link', expected: rec.linkname ?? '', actual: got.link ?? '' });
    } else if (wantType === 'file') {
      if (got.size !== rec.size) differences.push({ ...base, kind: 'size', expected: rec.size, actual: got.size });
      else if (rec.sha256) toHash.push({ rec, abs: path.join(dir, p) });
      else unhashed++;
    }
  }
  for (const [p, got] of actual) {
    // Folders the generation builder made for parents an archive did not list are not extras.
    if (!want.has(p) && !(got.type === 'directory' && [...want.keys()].some((k) => k.startsWith(`${p}/`)))) {
      differences.push({ path: p, kind: 'extra', actual: got.type });
    }
  }
  let bytes = 0;
  await mapLimit(toHash, opts.concurrency ?? 4, async ({ rec, abs }) => {
    const digest = await sha256File(abs, opts.signal);
    bytes += rec.size;
    if (digest !== rec.sha256) differences.push({ path: rec.path, component: rec.component, kind: 'content', expected: rec.sha256!, actual: digest });
  });
  differences.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.kind.localeCompare(b.kind)));
  return { dir, checked: new Set([...want.keys(), ...actual.keys()]).size, bytes, unhashed, differences };
}

function octal(mode: number): string {
  return `0${mode.toString(8)}`;
}
