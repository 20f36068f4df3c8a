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
 * - `behind`: fsync each file in the background as soon as it closes (two at
 *   a time), while extraction goes on, then each folder: the disk writes
 *   while the archive inflates, and only the last files are waited for;
 * - `none`: no flush (the bench baseline).
 */
import { execFile } from 'node:child_process';
import { fsyncPath } from '../base/atomic-file.ts';
import { StoreError } from '../base/errors.ts';
import { mapLimit } from '../base/map-limit.ts';

export type FlushMode = 'none' | 'close' | 'batch' | 'syncfs' | 'behind';

/**
 * The default, measured (bench/RESULTS.md, "durability"): syncfs cost least
 * of the blocking modes, but it also forces the `.part` (kept until the
 * store commit, for resume) to disk, and it starts only when the last file
 * is written; `behind` writes each file back while the next inflates and
 * never forces the `.part` (531 MB single-member archive: 2.4-2.6 s behind,
 * 2.8-2.9 s syncfs, 2.5 s with no flush at all).
 */
export const DEFAULT_FLUSH: FlushMode = 'behind';

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
    case 'behind':
      await mapLimit([...dirs, root], 16, fsyncPath);
  }
}

/**
 * Write-behind for `behind`: files are fsynced in the background as they
 * close, at most `limit` at once (an fsync holds a thread-pool thread while
 * the disk works, and inflate and the writes need the others). `done`
 * waits for all of them and rejects with the first failure.
 */
export class FlushBehind {
  private readonly waiting: string[] = [];
  private running = 0;
  private failure: Error | undefined;
  private idle: (() => void) | undefined;
  private limit: number;

  constructor(limit = 2) {
    this.limit = limit;
  }

  add(file: string): void {
    if (this.failure) return;
    this.waiting.push(file);
    this.next();
  }

  /** Waits for every file's fsync (what is still queued then goes 16 at a time: nothing else needs the pool now). */
  async done(): Promise<void> {
    this.limit = 16;
    this.next();
    while (!this.failure && (this.running > 0 || this.waiting.length > 0)) {
      await new Promise<void>((resolve) => { this.idle = resolve; });
    }
    if (this.failure) throw this.failure;
  }

  private next(): void {
    while (this.running < this.limit && this.waiting.length > 0 && !this.failure) {
      const file = this.waiting.shift()!;
      this.running++;
      fsyncPath(file).catch((err: Error) => {
        this.failure ??= new StoreError('ERR_FLUSH', `Cannot make the extracted tree durable: fsync of ${file} failed: ${err.message}`, { cause: err, data: { path: file } });
      }).finally(() => {
        this.running--;
        this.next();
        if (this.failure || (this.running === 0 && this.waiting.length === 0)) this.idle?.();
      });
    }
  }
}
