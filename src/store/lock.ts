/**
 * One lander per root: `lander.lock` holds the owner's pid. The lock is made
 * with link(2) from a private temp file, which fails atomically when another
 * process holds it. A lock whose pid is gone is taken over.
 */
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LockError } from '../base/errors.ts';

export interface Lock {
  path: string;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(file: string): Promise<number | undefined> {
  try {
    const pid = Number(JSON.parse(await readFile(file, 'utf8')).pid);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    // Unreadable or half-written (the holder died while writing it): no live holder can be named.
    return undefined;
  }
}

/** Roots locked by this process: a lock file naming our own pid is stale unless listed here (pid reuse in containers). */
const heldHere = new Set<string>();

export async function acquireLock(root: string): Promise<Lock> {
  const file = path.join(root, 'lander.lock');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }) + '\n');
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(tmp, file);
        heldHere.add(file);
        return {
          path: file,
          async release() {
            if (!heldHere.delete(file)) return;
            // Only remove the lock if it is still ours.
            if ((await readHolder(file)) === process.pid) await rm(file, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readHolder(file);
      const ours = holder === process.pid && heldHere.has(file);
      if (holder !== undefined && (ours || (holder !== process.pid && alive(holder)))) {
        throw new LockError(`Cannot lock ${root}: another lander (pid ${holder}) is using it`, { data: { root, pid: holder } });
      }
      // Stale: move it aside atomically, so two processes taking over never both win.
      await rename(file, `${file}.stale-${process.pid}`).catch(() => undefined);
      await rm(`${file}.stale-${process.pid}`, { force: true });
    }
    throw new LockError(`Cannot lock ${root}: the lock file keeps changing hands`, { data: { root } });
  } finally {
    await rm(tmp, { force: true });
  }
}
