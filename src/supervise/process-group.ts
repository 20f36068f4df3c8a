/**
 * Signals to a whole process group. The server is spawned `detached`, so its
 * pid is also its process group id, and `kill(-pgid)` reaches every process it
 * started that did not leave the group on purpose (setsid).
 */
import fs from 'node:fs/promises';
import type { Logger } from '../report/log.ts';

/** Sends `signal` to the group led by `pgid`; false when the group is gone. Other errors are logged, not thrown: a stop must go on. */
export function signalGroup(pgid: number, signal: NodeJS.Signals, log?: Logger): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') log?.error({ event: 'server.signal-failed', serverPid: pgid, signal, err }, 'cannot signal the server process group');
    return false;
  }
}

/** True while any process of the group exists, zombies included. */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Processes of the group that are not zombies, from /proc; undefined where
 * there is no /proc. Zombies matter because a killed grandchild is re-parented
 * to PID 1, and a PID 1 that does not reap (containers, VMs) leaves it a
 * zombie forever: it holds no port or memory, but `kill(-pgid, 0)` still
 * succeeds, so waiting on that alone would always run to its bound.
 */
export async function liveMembers(pgid: number): Promise<number | undefined> {
  let names: string[];
  try {
    names = await fs.readdir('/proc');
  } catch {
    return undefined; // not Linux: the caller falls back to groupExists
  }
  const states = await Promise.all(names.filter((n) => /^\d+$/.test(n)).map(async (n) => {
    // A process may end between readdir and read: that is "not a member", not an error.
    const stat = await fs.readFile(`/proc/${n}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so cut at the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(pgrp) === pgid && state !== 'Z' && state !== 'X';
  }));
  return states.filter(Boolean).length;
}

/** True while a live (non-zombie) process of the group exists. */
export async function groupAlive(pgid: number): Promise<boolean> {
  if (!groupExists(pgid)) return false;
  const n = await liveMembers(pgid);
  return n === undefined ? true : n > 0;
}
