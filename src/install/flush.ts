/**
 * Durable before visible: a new tree's file data and folder entries reach
 * the disk before the store renames it and `current` can move to it, so a
 * power cut cannot leave `current` naming empty files (issue 13, item 8).
 *
 * Modes, measured by `bench/durability.ts`:
 * - `close`: fsync each file as it closes (in the writer), then each folder;
 * - `batch`: fsync every file and folder at the end, 16 at a time;
 * - `syncfs`: `sync -f` (syncfs(2)) on the staging folder's file system: one
 *   call, but it also waits for every other writer on that file system;
 * - `none`: no flush (the bench baseline).
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { mapLimit } from '../base/map-limit.ts';

export type FlushMode = 'none' | 'close' | 'batch' | 'syncfs';

/** The default: see bench/RESULTS.md ("durability"). */
export const DEFAULT_FLUSH: FlushMode = 'close';

async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Flushes what `mode` left for the end; `files` and `dirs` are absolute paths, `root` the staging folder. */
export async function flushTree(mode: FlushMode, root: string, files: readonly string[], dirs: readonly string[]): Promise<void> {
  switch (mode) {
    case 'none':
      return;
    case 'syncfs':
      return new Promise((resolve, reject) => {
        execFile('sync', ['-f', root], { timeout: 10 * 60_000 }, (err) => (err ? reject(err) : resolve()));
      });
    case 'batch':
      await mapLimit(files, 16, fsyncPath);
      await mapLimit([...dirs, root], 16, fsyncPath);
      return;
    case 'close':
      await mapLimit([...dirs, root], 16, fsyncPath);
  }
}
