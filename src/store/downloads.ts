/**
 * The `downloads/` folder: resumable archive bytes, every file named by its
 * archive's digest (`<sha256>.part…`, `<sha256>.chunks…`). Installs mark the
 * digest they are using; a prune after a landing removes what nobody uses
 * and nothing pins (partial downloads of versions no longer wanted, and any
 * left by a crash after their tree was stored).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { readPartMeta } from '../install/part-file.ts';

export class Downloads {
  readonly dir: string;
  /** Archive digests an install is using now, a count per digest. */
  readonly #inUse = new Map<string, number>();

  constructor(dir: string) {
    this.dir = dir;
  }

  /** `downloads/<sha256>.part`; its metadata lives in `<part>.json`. */
  partPath(sha256: string): string {
    return path.join(this.dir, `${sha256}.part`);
  }

  /** Marks the downloads of `sha256` in use until the returned release is called: `prune` leaves them. */
  use(sha256: string): () => void {
    this.#inUse.set(sha256, (this.#inUse.get(sha256) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#inUse.get(sha256) ?? 1) - 1;
      if (n > 0) this.#inUse.set(sha256, n);
      else this.#inUse.delete(sha256);
    };
  }

  /**
   * Removes the files of archives nobody is installing and `keep` does not name, except a `.part`
   * whose metadata says it came from one of `urls` (a version wanted again, queued but not yet at
   * its digest: its bytes resume instead of coming again).
   */
  async prune(keep: ReadonlySet<string>, urls: ReadonlySet<string> = new Set()): Promise<{ names: string[]; bytes: number }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { names: [], bytes: 0 };
      throw err;
    }
    const removed: string[] = [];
    const wantedUrl = new Map<string, boolean>();
    let bytes = 0;
    for (const name of names.sort()) {
      const sha = /^([0-9a-f]{64})\.(part|chunks)/.exec(name)?.[1];
      if (!sha || keep.has(sha) || this.#inUse.has(sha)) continue;
      if (urls.size > 0) {
        // Unreadable or torn metadata names no URL: the .part goes, as it would not be resumed anyway.
        if (!wantedUrl.has(sha)) wantedUrl.set(sha, urls.has((await readPartMeta(this.partPath(sha)).catch(() => undefined))?.url ?? ''));
        if (wantedUrl.get(sha)) continue;
      }
      const abs = path.join(this.dir, name);
      bytes += await treeBytes(abs);
      await rm(abs, { recursive: true, force: true });
      removed.push(name);
    }
    return { names: removed, bytes };
  }

}

/** Bytes of a file, or of the files under a folder (a chunked resume tree). */
async function treeBytes(abs: string): Promise<number> {
  const st = await stat(abs).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of await readdir(abs)) n += await treeBytes(path.join(abs, e));
  return n;
}
