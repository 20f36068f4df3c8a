/**
 * Pure: one archive entry's header (as the tar gate read it) in, a decision
 * out: which kind of thing to create at which checked path, or a refusal
 * with its code and reason. What the tree already holds (links, folders,
 * collisions) is the tree writer's business, not this one's.
 */
import type { ErrorCode } from '../base/error-codes.ts';
import type { EntryPathLimits } from './entry-path.ts';
import { checkEntryPath } from './entry-path.ts';
import type { GateEntry } from './tar-gate.ts';
import { typeName } from './tar-headers.ts';

export type EntryDecision =
  | { kind: 'file'; path: string; size: number; /** Clamped: 0755 when any execute bit is set, else 0644 (#13). */ mode: number }
  | { kind: 'directory'; path: string }
  | { kind: 'symlink'; path: string; /** Raw target; the link table checks where it leads. */ linkname: string }
  | { kind: 'link'; path: string; /** The checked path of the hard link's target. */ target: string }
  /** `./` itself: nothing to create. */
  | { kind: 'root' }
  | { kind: 'refuse'; code: ErrorCode; reason: string; data?: Record<string, unknown> };

/** Type flags extracted as regular files. */
export const FILE_FLAGS: ReadonlySet<string> = new Set(['0', '\0', '7']);

/**
 * @example classifyEntry({ flag: '0', name: './bin/server', mode: 0o775, size: 10, ... }, {})
 *   // { kind: 'file', path: 'bin/server', size: 10, mode: 0o755 }
 * @example classifyEntry({ flag: 'S', name: 'disk.img', ... }, {}).kind // 'refuse'
 */
export function classifyEntry(h: Pick<GateEntry, 'flag' | 'name' | 'linkname' | 'size' | 'mode'>, limits: EntryPathLimits): EntryDecision {
  const kind = FILE_FLAGS.has(h.flag) ? 'file' : h.flag === '5' ? 'directory' : h.flag === '2' ? 'symlink' : h.flag === '1' ? 'link' : undefined;
  if (!kind) {
    const sparse = h.flag === 'S' ? '; lander does not extract sparse files: repack without --sparse' : '';
    return { kind: 'refuse', code: 'ERR_ARCHIVE_ENTRY_TYPE', reason: `is a ${typeName(h.flag)}${sparse}; only files, folders and links are extracted`, data: { type: typeName(h.flag), typeflag: h.flag } };
  }
  const checked = checkEntryPath(h.name, limits);
  if (!checked.ok) {
    const lim = checked.limit;
    return { kind: 'refuse', code: lim ? 'ERR_ARCHIVE_LIMIT' : 'ERR_ARCHIVE_PATH', reason: checked.reason, data: lim ? { limit: lim.name, value: lim.value, max: lim.max } : {} };
  }
  const path = checked.path;
  if (path === '') {
    return kind === 'directory' ? { kind: 'root' } : { kind: 'refuse', code: 'ERR_ARCHIVE_PATH', reason: 'names the root folder but is not a folder' };
  }
  // GNU tar makes a folder of a regular-file entry named "x/"; tar-stream does only for some type flags: refuse the ambiguity.
  if (kind !== 'directory' && h.name.endsWith('/')) return { kind: 'refuse', code: 'ERR_ARCHIVE_PATH', reason: `is a ${typeName(h.flag)} whose name ends in "/"` };
  switch (kind) {
    case 'file':
      return { kind, path, size: h.size, mode: h.mode & 0o111 ? 0o755 : 0o644 };
    case 'directory':
      // GNU tar, run unprivileged, gives a folder its mode once past its entries; a later entry into a
      // folder its owner cannot read, write and enter then fails there, while lander's 0755 would not.
      if ((h.mode & 0o700) !== 0o700) return { kind: 'refuse', code: 'ERR_ARCHIVE_PATH', reason: `is a folder with mode ${(h.mode & 0o7777).toString(8).padStart(4, '0')}, which does not let its owner read, write and enter it`, data: { mode: h.mode } };
      return { kind, path };
    case 'symlink':
      return { kind, path, linkname: h.linkname };
    case 'link': {
      const target = checkEntryPath(h.linkname, limits);
      if (!target.ok || target.path === '') {
        return { kind: 'refuse', code: 'ERR_ARCHIVE_LINK', reason: `is a hard link to ${JSON.stringify(h.linkname)}, which is not a file extracted earlier from this archive`, data: { linkname: h.linkname } };
      }
      return { kind, path, target: target.path };
    }
  }
}
