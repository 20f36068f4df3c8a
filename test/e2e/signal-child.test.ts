/**
 * signalChild (src/runtime.ts) against a real child: a second signal must
 * reach it, and its exit must be reported as it was. Deno's own
 * `ChildProcess.kill` fails both: after `kill('SIGHUP')` a `kill('SIGTERM')`
 * sends nothing, and the exit reads `{ code: null, signal: 'SIGHUP' }`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { scriptCommand, signalChild } from '../../src/base/runtime.ts';

let dir: string;
let script: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'lander-signal-'));
  script = path.join(dir, 'child.mjs');
  // Says which signals it got; exits 0 on SIGTERM, as lander does.
  await writeFile(script, [
    "process.on('SIGHUP', () => console.log('HUP'));",
    "process.on('SIGTERM', () => { console.log('TERM'); process.exit(0); });",
    'setInterval(() => {}, 1000);',
    "console.log('ready');",
  ].join('\n'));
});

afterAll(async () => {
  for (const c of children) if (c.pid !== undefined && c.exitCode === null) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  await rm(dir, { recursive: true, force: true });
});

function start(): { child: ChildProcess; lines: () => string[]; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const { command, args } = scriptCommand(script);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, lines: () => out.split('\n').filter(Boolean), exited };
}

it('a SIGHUP, then a SIGTERM: both arrive and the child exits 0', async () => {
  const c = start();
  await expect.poll(c.lines, { timeout: 20_000 }).toContain('ready');
  expect(signalChild(c.child, 'SIGHUP')).toBe(true);
  await expect.poll(c.lines, { timeout: 5_000 }).toContain('HUP');
  expect([c.child.exitCode, c.child.signalCode]).toEqual([null, null]);
  expect(signalChild(c.child, 'SIGTERM')).toBe(true);
  const t = setTimeout(() => c.child.pid !== undefined && process.kill(c.child.pid, 'SIGKILL'), 10_000);
  const r = await c.exited.finally(() => clearTimeout(t));
  expect(c.lines()).toEqual(['ready', 'HUP', 'TERM']);
  expect(r).toEqual({ code: 0, signal: null });
  // An exited child gets nothing: its pid may be someone else's by now.
  expect(signalChild(c.child, 'SIGKILL')).toBe(false);
});

it('a SIGKILL after a SIGHUP ends the child, reported as killed by SIGKILL', async () => {
  const c = start();
  await expect.poll(c.lines, { timeout: 20_000 }).toContain('ready');
  signalChild(c.child, 'SIGHUP');
  await expect.poll(c.lines, { timeout: 5_000 }).toContain('HUP');
  signalChild(c.child, 'SIGKILL');
  expect(await c.exited).toEqual({ code: null, signal: 'SIGKILL' });
});
