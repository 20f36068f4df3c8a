/**
 * The server runs in its own process group, so it outlives a lander that is
 * SIGKILLed or loses power mid-way. `server.json` in the root names the
 * running server's group; the next lander stops that orphan before starting
 * its own, or the new server would find its port taken (or, worse, the old
 * one would answer the new one's health check).
 */
import { readdir, readFile, readlink, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../base/atomic-file.ts';
import type { Logger } from '../report/log.ts';
import { groupAlive, signalGroup } from './process-group.ts';
import { sleep } from '../base/backoff.ts';

export interface ServerRecord {
  pid: number;
  generation: number | string;
  startedAt: string;
}

const file = (root: string) => path.join(root, 'server.json');

export async function recordServer(root: string, rec: ServerRecord): Promise<void> {
  await writeFileAtomic(file(root), JSON.stringify(rec) + '\n');
}

export async function clearServerRecord(root: string): Promise<void> {
  await rm(file(root), { force: true });
}

/**
 * Stops the group named in `server.json` if it still runs from a generation
 * under `root` (the cwd check guards against a recycled pid). Returns the pid
 * it stopped, if any.
 */
export async function reapOrphanServer(root: string, log: Logger, stopTimeoutMs: number): Promise<number | undefined> {
  const recorded = await reapRecorded(root, log, stopTimeoutMs);
  // A lander killed between spawning the server and writing server.json left one nobody recorded
  // (found by the crash campaign: it kept the port, failed the new server and answered its health checks).
  for (const pid of await unrecordedServers(root)) {
    if (pid === recorded) continue;
    log.warn({ event: 'server.orphan', serverPid: pid, generation: '?', recorded: false }, 'a server left running by an earlier lander (not in server.json) is being stopped');
    await stopGroup(pid, log, stopTimeoutMs);
  }
  return recorded;
}

/**
 * Process-group leaders (the server is spawned detached, so it leads its
 * group) whose working folder is a generation of this root: only a server
 * lander started sits there. Empty where there is no /proc.
 */
async function unrecordedServers(root: string): Promise<number[]> {
  const gens = path.join(await realpath(root).catch(() => root), 'generations') + path.sep;
  const names = await readdir('/proc').catch(() => [] as string[]);
  const found: number[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n) || Number(n) === process.pid) continue;
    // A process may end between readdir and these reads: that is "not a server", not an error.
    const cwd = await readlink(`/proc/${n}/cwd`).catch(() => undefined);
    if (cwd === undefined || !(cwd + path.sep).startsWith(gens)) continue;
    const stat = await readFile(`/proc/${n}/stat`, 'utf8').catch(() => '');
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === Number(n) && state !== 'Z' && state !== 'X') found.push(Number(n));
  }
  return found;
}

async function stopGroup(pid: number, log: Logger, stopTimeoutMs: number): Promise<void> {
  signalGroup(pid, 'SIGTERM', log);
  const deadline = Date.now() + stopTimeoutMs;
  while (Date.now() < deadline && (await groupAlive(pid))) await sleep(50);
  if (await groupAlive(pid)) signalGroup(pid, 'SIGKILL', log);
}

async function reapRecorded(root: string, log: Logger, stopTimeoutMs: number): Promise<number | undefined> {
  let rec: ServerRecord;
  try {
    rec = JSON.parse(await readFile(file(root), 'utf8')) as ServerRecord;
  } catch {
    return undefined; // none recorded, or half-written by a crash: nothing we can safely name
  }
  const pid = Number(rec.pid);
  if (!Number.isInteger(pid) || pid <= 1 || !(await groupAlive(pid))) {
    await clearServerRecord(root);
    return undefined;
  }
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  const gens = path.join(root, 'generations') + path.sep;
  if (cwd !== undefined && !cwd.startsWith(gens)) {
    log.warn({ event: 'server.orphan-skipped', serverPid: pid, cwd }, 'the recorded server pid now belongs to another process; leaving it alone');
    await clearServerRecord(root);
    return undefined;
  }
  log.warn({ event: 'server.orphan', serverPid: pid, generation: rec.generation }, 'a server left running by an earlier lander is being stopped');
  await stopGroup(pid, log, stopTimeoutMs);
  await clearServerRecord(root);
  return pid;
}
