/**
 * `--pretty` as a person sees it: `lander run --pretty` in a real terminal
 * (tmux), its screen captured. One readable line per record, the event name
 * first, the server's own lines marked as such; no raw JSON on screen.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { landerArgv } from '../helpers/lander-cli.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';

const run = promisify(execFile);
const TMUX = ['-L', `lander-pretty-${process.pid}`];
let server: TestServer;
let work: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-pretty-'));
});
afterAll(async () => {
  await run('tmux', [...TMUX, 'kill-server']).catch(() => undefined);
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

describe('lander run --pretty in a terminal', () => {
  it('prints one readable line per record', async () => {
    const core = path.join(work, 'core');
    await makeCoreTree(core, '1.0.0', { smallFiles: 3 });
    await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', core);
    const cuda = path.join(work, 'cuda');
    await makeCudaTree(cuda, { libBytes: 32 * 1024, libs: 1 });
    await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', cuda);
    const root = path.join(work, 'root');
    await mkdir(root);
    const cfg = path.join(work, 'lander.json');
    await writeFile(cfg, JSON.stringify(releaseConfig(server, root, { server: '1.0.0', cuda: 'cu128-v1', appTag: 'libs' }, {
      server: { command: './voicebox-server-cuda', args: ['--port', '0'], health: { logLine: 'listening on', timeout: '10s' }, stop: { timeout: '3s' } },
    })));
    const { cmd, argv } = landerArgv(['run', '--pretty', '--config', cfg]);
    const shell = `NO_COLOR=1 ${[cmd, ...argv].map(quote).join(' ')}; sleep 60`;
    await run('tmux', [...TMUX, 'new-session', '-d', '-s', 'p', '-x', '250', '-y', '80', shell]);
    const screen = async () => (await run('tmux', [...TMUX, 'capture-pane', '-p', '-J', '-t', 'p'])).stdout;
    await expect.poll(screen, { timeout: 30_000, interval: 200 }).toMatch(/generation\.landed/);
    await run('tmux', [...TMUX, 'send-keys', '-t', 'p', 'C-c']);
    await expect.poll(screen, { timeout: 15_000, interval: 200 }).toMatch(/daemon\.stopped/);
    const lines = (await screen()).split('\n').filter((l) => l.trim());
    for (const l of lines.filter((x) => !x.startsWith('^C'))) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /);
    expect(lines.some((l) => l.startsWith('{'))).toBe(false);
    expect(lines.some((l) => /INFO: install\.verified {2}component verified and stored \{.*"component":"server"/.test(l))).toBe(true);
    expect(lines.some((l) => /INFO: server stdout\| listening on \d+/.test(l))).toBe(true);
    expect(lines.some((l) => /INFO: generation\.landed {2}new generation is (live and healthy|current)/.test(l))).toBe(true);
  }, 60_000);
});
