/** `npm start`'s demo, run to completion with `--once`: it must install, land a new core with a restart, and clean up. */
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

it('the offline demo lands two generations, restarts the server, and removes its folder', async () => {
  const isDeno = 'Deno' in globalThis;
  const argv = isDeno ? ['run', '-A', `${REPO}src/cli/demo/demo.ts`, '--once'] : [`${REPO}dist/src/cli/demo/demo.js`, '--once'];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
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

it('removes its folder when its stdout is closed early (npm start | head -1)', async () => {
  const isDeno = 'Deno' in globalThis;
  const argv = isDeno ? ['run', '-A', `${REPO}src/cli/demo/demo.ts`] : [`${REPO}dist/src/cli/demo/demo.js`];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let first = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  // Read the first line (it names the folder), then close the pipe as head would.
  await new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      first += d;
      if (first.includes('\n')) {
        child.stdout.destroy();
        resolve();
      }
    });
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const folder = /lander demo in (\S+)/.exec(first)![1]!;
  expect(err).toBe('');
  expect(code).toBe(0);
  await expect(stat(folder)).rejects.toMatchObject({ code: 'ENOENT' });
}, 120_000);
