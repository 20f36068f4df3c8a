/**
 * Generations: a complete server folder made of hard links to one store entry
 * per component, and the atomic swap of the `current` symlink.
 */
import { copyFile, link, lstat, mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { StoreError } from '../base/errors.ts';
import { fsyncPath } from '../base/atomic-file.ts';
import { mapLimit } from '../base/map-limit.ts';
import { checkMergedLinks } from '../install/link-table.ts';
import type { FileRecord } from './file-record.ts';

export interface GenerationPart {
  component: string;
  /** Absolute path of the store entry. */
  dir: string;
  files: FileRecord[];
}

export interface BuildStats {
  files: number;
  linked: number;
  copied: number;
}

/**
 * Builds `target` (which must not exist) from `parts` in a temp folder beside
 * it, then renames it into place. Two components that provide the same file,
 * or a file under another component's symlink, are a conflict: nothing is
 * ever written through a link.
 */
export async function buildGeneration(target: string, parts: GenerationPart[]): Promise<BuildStats> {
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  const owner = new Map<string, { component: string; type: FileRecord['type'] }>();
  const dirs: string[] = [];
  const leaves: { part: GenerationPart; rec: FileRecord }[] = [];
  for (const part of parts) {
    for (const rec of part.files) {
      const prev = owner.get(rec.path);
      if (prev) {
        if (prev.type === 'directory' && rec.type === 'directory') continue;
        throw new StoreError('ERR_GENERATION_CONFLICT', `Cannot build a generation: "${rec.path}" is provided by both ${prev.component} and ${part.component}`, {
          data: { path: rec.path, components: [prev.component, part.component] },
        });
      }
      // No entry may sit below a path that any component made a symlink or file.
      for (let p = path.posix.dirname(rec.path); p !== '.' && p !== '/'; p = path.posix.dirname(p)) {
        const up = owner.get(p);
        if (up && up.type !== 'directory') {
          throw new StoreError('ERR_GENERATION_CONFLICT', `Cannot build a generation: "${rec.path}" from ${part.component} lies under "${p}", a ${up.type} from ${up.component}`, {
            data: { path: rec.path, under: p, components: [up.component, part.component] },
          });
        }
      }
      owner.set(rec.path, { component: part.component, type: rec.type });
      if (rec.type === 'directory') dirs.push(rec.path);
      else leaves.push({ part, rec });
    }
  }
  // Each archive's links were checked alone; together they must still stay inside the generation.
  const symlinks = leaves.filter((l) => l.rec.type === 'symlink').map((l) => ({ path: l.rec.path, target: l.rec.linkname ?? '', component: l.part.component }));
  const bad = checkMergedLinks(symlinks);
  if (bad) {
    const from = symlinks.find((l) => l.path === bad.path)!.component;
    throw new StoreError('ERR_GENERATION_LINK', `Cannot build a generation: the symlink "${bad.path}" from ${from} ${bad.reason}, once the components are combined`, {
      data: { entry: bad.path, component: from, components: parts.map((p) => p.component) },
    });
  }
  const stats: BuildStats = { files: leaves.length, linked: 0, copied: 0 };
  try {
    await mkdir(tmp, { mode: 0o755 });
    // Parents first; archives may omit directory entries, so also create every leaf's parent.
    const allDirs = new Set(dirs);
    for (const { rec } of leaves) {
      for (let p = path.posix.dirname(rec.path); p !== '.'; p = path.posix.dirname(p)) allDirs.add(p);
    }
    for (const d of [...allDirs].sort((a, b) => a.length - b.length)) await mkdir(path.join(tmp, d), { recursive: true, mode: 0o755 });
    await mapLimit(leaves, 32, async ({ part, rec }) => {
      const src = path.join(part.dir, rec.path);
      const dst = path.join(tmp, rec.path);
      if (rec.type === 'symlink') {
        await symlink(rec.linkname!, dst);
        return;
      }
      try {
        await link(src, dst);
        stats.linked++;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
        await copyFile(src, dst);
        stats.copied++;
      }
    });
    await fsyncPath(tmp);
    await rename(tmp, target);
    await fsyncPath(path.dirname(target));
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof StoreError) throw err;
    throw new StoreError('ERR_GENERATION_BUILD', `Cannot build generation ${path.basename(target)}: ${(err as Error).message}`, { cause: err, data: { target } });
  }
  return stats;
}

/**
 * Points `link` at `target` atomically: a new symlink beside it, renamed over
 * the old one. Readers see the old or the new generation, never neither.
 */
export async function swapSymlink(linkPath: string, target: string): Promise<void> {
  const tmp = `${linkPath}.tmp-${randomBytes(4).toString('hex')}`;
  await symlink(target, tmp);
  try {
    await rename(tmp, linkPath);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new StoreError('ERR_SWAP', `Cannot switch ${linkPath} to ${target}: ${(err as Error).message}`, { cause: err, data: { link: linkPath, target } });
  }
  await fsyncPath(path.dirname(linkPath));
}

/** The target of `current`, or undefined when there is none. */
export async function readSymlink(linkPath: string): Promise<string | undefined> {
  try {
    const st = await lstat(linkPath);
    if (!st.isSymbolicLink()) return undefined;
    return await readlink(linkPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
