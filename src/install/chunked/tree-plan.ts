/**
 * The staging tree a chunk index describes, judged entry by entry with the
 * same rules as the one-pass extractor (src/install/extract.ts, HOSTILE-
 * INPUT.md): checked names and limits, no entry through or onto a symlink,
 * no case/Unicode collisions, links that stay inside the tree, hard links
 * only to files listed earlier, modes clamped. Pure: the chunked installer
 * creates what this returns, in order, and refuses what it refuses.
 */
import type { ErrorCode } from '../../base/error-codes.ts';
import { ArchiveError } from '../../base/errors.ts';
import type { ExtractLimits, FileRecord } from '../../../workers/protocol.ts';
import { checkEntryPath, collisionKey, displayEntryName, parentPaths } from '../entry-path.ts';
import { LinkTable } from '../link-table.ts';
import type { IndexEntry } from './index-format.ts';

export type TreeOp =
  | { kind: 'dir'; path: string }
  | { kind: 'file'; path: string; entry: number; size: number; mode: number; sha256: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'link'; path: string; target: string };

export interface TreePlan {
  /** In creation order: a parent before what it holds. */
  ops: TreeOp[];
  /** The store's record of the tree, as the one pass would write it. */
  files: FileRecord[];
  /** Normalised path of each index entry ('' for the root folder). */
  paths: string[];
  /** File bytes. */
  bytes: number;
}

/** @throws ArchiveError naming the entry (`ERR_ARCHIVE_PATH`, `ERR_ARCHIVE_LINK`, `ERR_ARCHIVE_LIMIT`, `ERR_ARCHIVE_ENTRY_TYPE`) */
export function planTree(entries: readonly IndexEntry[], limits: ExtractLimits, component: string): TreePlan {
  const ops: TreeOp[] = [];
  const files: FileRecord[] = [];
  const paths: string[] = [];
  const kinds = new Map<string, FileRecord['type']>();
  const keys = new Map<string, string>();
  const byPath = new Map<string, FileRecord>();
  const links = new LinkTable({ maxPathLength: limits.maxPathLength });
  let bytes = 0;
  const fail = (code: ErrorCode, name: string, what: string, data: Record<string, unknown> = {}) => {
    const entry = displayEntryName(name);
    return new ArchiveError(code, `Cannot extract ${component}: entry ${JSON.stringify(entry)} ${what}`, { data: { component, entry, ...data } });
  };
  const claim = (rel: string, name: string) => {
    const key = collisionKey(rel);
    const prev = keys.get(key);
    if (prev !== undefined) throw fail('ERR_ARCHIVE_PATH', name, prev === rel ? 'appears twice in the archive' : `collides with the earlier entry "${prev}" on a case-insensitive or normalising file system`, { collidesWith: prev });
    keys.set(key, rel);
  };
  if (entries.length > limits.maxEntries) throw fail('ERR_ARCHIVE_LIMIT', entries[limits.maxEntries]!.name, `is entry ${limits.maxEntries + 1}, over limits.maxEntries (${limits.maxEntries})`, { limit: 'maxEntries', value: entries.length, max: limits.maxEntries });
  entries.forEach((e, i) => {
    const name = e.name;
    const checked = checkEntryPath(name, limits);
    if (!checked.ok) {
      const lim = checked.limit;
      throw fail(lim ? 'ERR_ARCHIVE_LIMIT' : 'ERR_ARCHIVE_PATH', name, checked.reason, lim ? { limit: lim.name, value: lim.value, max: lim.max } : {});
    }
    const rel = checked.path;
    paths.push(rel);
    if (rel === '') {
      if (e.type !== 'directory') throw fail('ERR_ARCHIVE_PATH', name, 'names the root folder but is not a folder');
      return;
    }
    for (const p of parentPaths(rel)) {
      if (links.has(p)) throw fail('ERR_ARCHIVE_LINK', name, `would be written through the symlink "${p}"`, { link: p });
      const k = kinds.get(p);
      if (k !== undefined && k !== 'directory') throw fail('ERR_ARCHIVE_PATH', name, `has the non-folder "${p}" as a parent`);
    }
    if (kinds.get(rel) === 'directory' && e.type === 'directory') return;
    claim(rel, name);
    for (const p of parentPaths(rel)) {
      if (kinds.has(p)) continue;
      claim(p, name);
      kinds.set(p, 'directory');
      ops.push({ kind: 'dir', path: p });
      files.push({ path: p, type: 'directory', size: 0, mode: 0o755 });
    }
    switch (e.type) {
      case 'directory':
        kinds.set(rel, 'directory');
        ops.push({ kind: 'dir', path: rel });
        files.push({ path: rel, type: 'directory', size: 0, mode: 0o755 });
        break;
      case 'symlink': {
        const reason = links.add(rel, e.linkname ?? '');
        if (reason) throw fail('ERR_ARCHIVE_LINK', name, reason, { linkname: e.linkname });
        kinds.set(rel, 'symlink');
        ops.push({ kind: 'symlink', path: rel, target: e.linkname! });
        files.push({ path: rel, type: 'symlink', size: 0, mode: 0o777, linkname: e.linkname! });
        break;
      }
      case 'link': {
        const target = checkEntryPath(e.linkname ?? '', limits);
        const rec = target.ok ? byPath.get(target.path) : undefined;
        if (!target.ok || !rec) throw fail('ERR_ARCHIVE_LINK', name, `is a hard link to ${JSON.stringify(e.linkname)}, which is not a file extracted earlier from this archive`, { linkname: e.linkname });
        kinds.set(rel, 'link');
        ops.push({ kind: 'link', path: rel, target: target.path });
        files.push({ path: rel, type: 'link', size: rec.size, mode: rec.mode, linkname: target.path, ...(rec.sha256 ? { sha256: rec.sha256 } : {}) });
        break;
      }
      case 'file': {
        if (bytes + e.size > limits.maxExtractedBytes) {
          throw fail('ERR_ARCHIVE_LIMIT', name, `would take the extracted size to ${bytes + e.size} bytes, over limits.maxExtractedBytes (${limits.maxExtractedBytes})`, { limit: 'maxExtractedBytes', value: bytes + e.size, max: limits.maxExtractedBytes });
        }
        bytes += e.size;
        const mode = e.mode & 0o111 ? 0o755 : 0o644;
        kinds.set(rel, 'file');
        const rec: FileRecord = { path: rel, type: 'file', size: e.size, mode, sha256: e.sha256! };
        byPath.set(rel, rec);
        ops.push({ kind: 'file', path: rel, entry: i, size: e.size, mode, sha256: e.sha256! });
        files.push(rec);
        break;
      }
    }
  });
  return { ops, files, paths, bytes };
}
