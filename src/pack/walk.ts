/**
 * Reads a one-folder build into the list of entries to pack: depth-first,
 * names sorted by UTF-16 code unit (locale-independent, so the order is the
 * same on every machine), never following a symlink.
 */
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { PackError } from '../base/errors.ts';

export interface SourceEntry {
  /** POSIX path relative to the folder. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Bytes, for files. */
  size: number;
  /** Normalized: 0755 for folders and files with any exec bit, 0644 for other files, 0777 for links. */
  mode: number;
  linkname?: string;
}

/** Counted so a runaway tree (a link loop copied as folders) fails instead of filling memory. */
const MAX_ENTRIES = 2_000_000;

/**
 * Every entry under `root`. Hard-linked files come out as separate files:
 * whether two paths share an inode is lost by `cp -r`, a CI cache or a zip,
 * and the archive must not change with it.
 *
 * @throws PackError `ERR_PACK_SOURCE` for a device, FIFO or socket, or an unreadable folder.
 */
export async function walkSource(root: string): Promise<SourceEntry[]> {
  const out: SourceEntry[] = [];
  const visit = async (rel: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(path.join(root, rel))).sort();
    } catch (cause) {
      throw new PackError('ERR_PACK_SOURCE', `Cannot pack ${root}: cannot read the folder ${JSON.stringify(rel || '.')} (${(cause as Error).message})`, { cause, data: { path: rel } });
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const st = await lstat(path.join(root, r));
      if (out.length >= MAX_ENTRIES) throw new PackError('ERR_PACK_SOURCE', `Cannot pack ${root}: more than ${MAX_ENTRIES} entries`, { data: { limit: MAX_ENTRIES } });
      if (st.isSymbolicLink()) out.push({ path: r, type: 'symlink', size: 0, mode: 0o777, linkname: await readlink(path.join(root, r)) });
      else if (st.isDirectory()) {
        out.push({ path: r, type: 'directory', size: 0, mode: 0o755 });
        await visit(r);
      } else if (st.isFile()) out.push({ path: r, type: 'file', size: st.size, mode: st.mode & 0o111 ? 0o755 : 0o644 });
      else throw new PackError('ERR_PACK_SOURCE', `Cannot pack ${root}: ${JSON.stringify(r)} is not a file, folder or symlink (a device, FIFO or socket)`, { data: { path: r } });
    }
  };
  await visit('');
  return out;
}
