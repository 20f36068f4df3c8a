/** `npm start`'s demo, run to completion with `--once`: it must install, land a new core with a restart, and clean up. */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { gone } from '../helpers/process-gone.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The demo as `npm start` runs it (dist/ under Node, the TypeScript source under Deno), stdout and stderr piped. */
function spawnDemo(...args: string[]) {
  const argv = 'Deno' in globalThis ? ['run', '-A', `${REPO}src/cli/demo/demo.ts`, ...args] : [`${REPO}dist/src/cli/demo/demo.js`, ...args];
  return spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
}

it('the offline demo lands two generations, restarts the server, and removes its folder', async () => {
  const child = spawnDemo('--once');
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  expect(err).toBe('');
  expect(code).toBe(0);
  expect(out).toMatch(/generation 1 is live; the server \(pid \d+\) is healthy/);
  const restart = /the server restarted \(pid (\d+) -> (\d+)\)/.exec(out);
  expect(restart).not.toBeNull();
  expect(restart![1]).not.toBe(restart![2]);
  expect(out).toMatch(/generations kept for rollback: 1 \(server 1\.0\.0\), 2 \(server 1\.1\.0\)/);
  const folder = /lander demo in (\S+)/.exec(out)![1]!;
  await expect(stat(folder)).rejects.toMatchObject({ code: 'ENOENT' });
}, 120_000);

// `npm start | head -N`: stdout closes at some step of the demo; whichever, it must stop what it started and remove its folder.
it.each([
  ['its first line', /lander demo in /],
  ['the daemon starts', /2\. Starting the lander daemon/],
  ['the first landing', /generation 1 is live; the server \(pid \d+\)/],
])('removes its folder and stops its server when its stdout is closed after %s (npm start | head)', async (_step, upTo) => {
  const child = spawnDemo();
  let seen = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  // Read up to the step's line, then close the pipe as head would.
  await new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      seen += d;
      if (upTo.test(seen) && seen.slice(seen.search(upTo)).includes('\n')) {
        child.stdout.destroy();
        resolve();
      }
    });
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const folder = /lander demo in (\S+)/.exec(seen)![1]!;
  expect(err).toBe('');
  expect(code).toBe(0);
  await expect(stat(folder)).rejects.toMatchObject({ code: 'ENOENT' });
  const pid = /the server \(pid (\d+)\)/.exec(seen)?.[1];
  if (pid) expect(gone(Number(pid))).toBe(true);
}, 120_000);

it('Ctrl-C once the first generation is live: exit 0, the server and the daemon stopped, the folder removed', async () => {
  const child = spawnDemo();
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const live = /generation 1 is live; the server \(pid (\d+)\)/;
  await new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (live.test(out)) resolve();
    });
  });
  const closed = new Promise<number | null>((r) => child.on('close', r));
  // process.kill, not child.kill: Deno's ChildProcess reports a child it signalled as killed by that signal, whatever its exit code.
  process.kill(child.pid!, 'SIGINT');
  const code = await closed;
  expect(err).toBe('');
  expect(code).toBe(0);
  expect(out).toMatch(/stopping: the server, the daemon, the release server; removing the demo folder/);
  expect(out).toMatch(/server: healthy -> stopping \(pid \d+, generation 1\)/);
  expect(gone(Number(live.exec(out)![1]))).toBe(true);
  await expect(stat(/lander demo in (\S+)/.exec(out)![1]!)).rejects.toMatchObject({ code: 'ENOENT' });
}, 120_000);
