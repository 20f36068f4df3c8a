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
import { StoreError } from '../base/errors.ts';
import { mapLimit } from '../base/map-limit.ts';

export type FlushMode = 'none' | 'close' | 'batch' | 'syncfs';

/**
 * The default, measured (bench/RESULTS.md, "durability"): one syncfs cost
 * least on both the 1 GB cuda-libs tree and 9,000 small files; an fsync per
 * file at close cost 1.3-1.7x the unflushed extraction.
 */
export const DEFAULT_FLUSH: FlushMode = 'syncfs';

/**
 * syncfs(2) of `root`'s file system through coreutils' `sync -f` (Node and
 * Deno have no syncfs). False when `sync` cannot be started; throws when it
 * ran and the flush failed (an I/O error: the tree is not durable).
 */
function syncfs(root: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _out: unknown, stderr: unknown) => {
      if (!err) return resolve(true);
      const code = (err as NodeJS.ErrnoException).code as unknown;
      // A string code is a failure to start (ENOENT, EACCES); a number is sync's own exit status.
      if (typeof code !== 'number' && !(err as { killed?: boolean }).killed) return resolve(false);
      reject(new StoreError('ERR_FLUSH', `Cannot make the extracted tree durable: sync -f ${root} failed: ${String(stderr).trim() || err.message}`, { cause: err, data: { path: root } }));
    };
    try {
      execFile('sync', ['-f', root], { timeout: 10 * 60_000 }, done);
    } catch {
      resolve(false); // Deno without --allow-run throws here
    }
  });
}

/** fsync of one file or folder by path (a fresh read-only descriptor flushes the same inode). */
export async function fsyncPath(p: string): Promise<void> {
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
    case 'syncfs': {
      const ran = await syncfs(root);
      if (ran) return;
      // No `sync` to run here (not installed, or a runtime without --allow-run): flush file by file instead.
      return flushTree('batch', root, files, dirs);
    }
    case 'batch':
      await mapLimit(files, 16, fsyncPath);
      await mapLimit([...dirs, root], 16, fsyncPath);
      return;
    case 'close':
      await mapLimit([...dirs, root], 16, fsyncPath);
  }
}
