/**
 * Free-space checks: before a download (preflight, once the archive's size
 * is known) and the words for a disk that fills up anyway (ENOSPC).
 */
import { statfs } from 'node:fs/promises';
import { LanderError } from '../base/errors.ts';
import { formatBytes } from '../base/units.ts';

export interface SpaceNeed {
  /** Archive bytes still to be written to the `.part` file. */
  partBytes: number;
  /** Expected extracted size. */
  extractedBytes: number;
  marginBytes: number;
}

/** Bytes needed in all (pure). */
export function bytesNeeded(n: SpaceNeed): number {
  return n.partBytes + n.extractedBytes + n.marginBytes;
}

/** What the preflight asks for, from the archive size and what is already on disk (pure). */
export function spaceNeed(opts: { archiveBytes: number; alreadyOnDisk: number; expansionEstimate: number; marginBytes: number }): SpaceNeed {
  return {
    partBytes: Math.max(0, opts.archiveBytes - opts.alreadyOnDisk),
    extractedBytes: Math.ceil(opts.archiveBytes * opts.expansionEstimate),
    marginBytes: opts.marginBytes,
  };
}

/** Bytes an unprivileged writer may still use on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Throws ERR_DISK_SPACE, naming the folder and the bytes missing, when `need` does not fit. */
export async function assertSpace(dir: string, need: SpaceNeed, what: string): Promise<void> {
  const free = await freeBytes(dir);
  const total = bytesNeeded(need);
  if (free >= total) return;
  throw new LanderError(
    'ERR_DISK_SPACE',
    `Cannot install ${what}: ${dir} has ${formatBytes(free)} free but needs ${formatBytes(total)} (archive ${formatBytes(need.partBytes)} + extracted about ${formatBytes(need.extractedBytes)} + margin ${formatBytes(need.marginBytes)}); free ${formatBytes(total - free)} (${total - free} bytes) and lander retries on the next check`,
    { data: { dir, free, needed: total, missing: total - free, ...need } },
  );
}

/** The error for a disk that filled up mid-install (ENOSPC), keeping the cause. */
export function diskFullError(dir: string, what: string, cause: unknown): LanderError {
  return new LanderError('ERR_DISK_FULL', `Cannot install ${what}: the file system holding ${dir} is full (${(cause as Error).message}); nothing was changed, the partial download is kept for a resume once space is freed`, {
    cause,
    data: { dir },
  });
}
