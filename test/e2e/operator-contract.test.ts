/**
 * The operator's contract (issue 14), tried as an operator would: in a real
 * terminal (tmux) for what a person sees, through pipes for what a script
 * sees. stdout carries only a command's result; an error is one line; help
 * is per command; a closed pipe is a quiet exit 0; status works against a
 * running daemon while the config file on disk is invalid; Ctrl-C during an
 * install says what was kept.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { landerArgv, runLander } from '../helpers/lander-cli.ts';
import { startDaemon } from '../helpers/daemon-proc.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';
import { Store } from '../../src/store/store.ts';
import { silentLogger } from '../../src/report/log.ts';

const run = promisify(execFile);
const TMUX = ['-L', `lander-contract-${process.pid}`];
const hasTmux = await run('tmux', ['-V']).then(() => true, () => false);
if (!hasTmux && process.env.CI === 'true') throw new Error('tmux is missing: the terminal tests of this file need it (apt-get install tmux)');
if (!hasTmux) console.warn('operator-contract: skipping the terminal tests: tmux is not installed');
const itTmux = hasTmux ? it : it.skip;

let server: TestServer;
let work: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-contract-'));
  const core = path.join(work, 'core');
  await makeCoreTree(core, '1.0.0', { smallFiles: 3 });
  await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', core);
  const cuda = path.join(work, 'cuda');
  // Incompressible: the archive is about as large as the tree, so a rate-limited download takes a while.
  await makeCudaTree(cuda, { libBytes: 1024 * 1024, libs: 3 });
  await publish(server, '1.0.0', 'cuda-libs-cu128-v1.tar.gz', cuda);
});
afterAll(async () => {
  if (hasTmux) await run('tmux', [...TMUX, 'kill-server']).catch(() => undefined);
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const shellLine = (args: string[]) => {
  const { cmd, argv } = landerArgv(args);
  return [cmd, ...argv].map(quote).join(' ');
};

async function inTerminal(name: string, args: string[]): Promise<() => Promise<string>> {
  // The exit code is printed after the command, then the pane stays for the capture.
  const shell = `NO_COLOR=1 ${shellLine(args)}; echo "rc=$?"; sleep 120`;
  await run('tmux', [...TMUX, 'new-session', '-d', '-s', name, '-x', '220', '-y', '50', shell]);
  return async () => (await run('tmux', [...TMUX, 'capture-pane', '-p', '-J', '-t', name])).stdout;
}

async function newRoot(name: string, extra: Record<string, unknown> = {}): Promise<{ root: string; cfg: string }> {
  const root = path.join(work, name);
  await mkdir(root);
  const cfg = path.join(work, `${name}.json`);
  await writeFile(cfg, JSON.stringify(releaseConfig(server, root, { server: '1.0.0', cuda: 'cu128-v1' }, extra)));
  return { root, cfg };
}

describe('in a terminal', () => {
  itTmux('a bad config is one line on the screen: the fields, a hint, no stack, no JSON', async () => {
    const cfg = path.join(work, 'bad.json');
    await writeFile(cfg, JSON.stringify({ root: path.join(work, 'bad-root'), components: { libs: { version: '1', url: 'http://127.0.0.1:1/x.tar.gz', sha256Ulr: '{url}.sha256' } }, keepGenerations: '3' }));
    const screen = await inTerminal('err', ['install', '--config', cfg]);
    await expect.poll(screen, { timeout: 20_000, interval: 200 }).toMatch(/rc=2/);
    const lines = (await screen()).split('\n').filter((l) => l.trim());
    expect(lines).toEqual([
      `lander install: Cannot use ${cfg}: components.libs: unknown key "sha256Ulr" (did you mean "sha256Url"?); keepGenerations: expected a number, got the string "3"`,
      'rc=2',
    ]);
  });

  itTmux('progress bars show a rate and an ETA; Ctrl-C says what was kept, exits 130, and a rerun resumes', async () => {
    const { root, cfg } = await newRoot('slow');
    const libs = '/download/v1.0.0/cuda-libs-cu128-v1.tar.gz';
    server.misbehave(libs, { rate: 256 * 1024 });
    const screen = await inTerminal('slow', ['install', '--config', cfg]);
    await expect.poll(screen, { timeout: 30_000, interval: 200 }).toMatch(/cuda-libs +\[#*-+\] +\d+%  [\d.]+ \w?i?B \/ [\d.]+ MiB  [\d.]+ \w?i?B\/s  ETA \d+(s|m\d\ds)/);
    await run('tmux', [...TMUX, 'send-keys', '-t', 'slow', 'C-c']);
    await expect.poll(screen, { timeout: 20_000, interval: 200 }).toMatch(/rc=130/);
    const text = await screen();
    expect(text).toMatch(/lander install: interrupted\. Kept: server 1\.0\.0 \(in the store\); [\d.]+ \w?i?B of partial downloads\. The current generation is unchanged; run the same command again to resume\./);
    expect(text).not.toMatch(/^\s+at /m);
    const parts = (await readdir(path.join(root, 'downloads'))).filter((f) => f.endsWith('.part'));
    expect(parts).toHaveLength(1);
    // Again, at full speed: the partial download resumes with a Range request and everything lands.
    const before = server.stats(libs).requests;
    const again = await runLander(['install', '--config', cfg, '--json']);
    expect(again.code).toBe(0);
    expect(server.stats(libs).ranges.slice(before)[0]).toMatch(/^bytes=[1-9]\d*-$/);
  });
});

describe('streams and exit codes', () => {
  it('install --json: one summary object on stdout, the logs on stderr', async () => {
    const { cfg } = await newRoot('json');
    const r = await runLander(['install', '--config', cfg, '--json']);
    expect(r.code).toBe(0);
    const out = r.stdout.trim().split('\n');
    expect(out).toHaveLength(1);
    const s = JSON.parse(out[0]!);
    expect(s).toMatchObject({ ok: true, interrupted: false, generation: 1, switched: true, failed: [], kept: [] });
    expect(s.installed.map((o: { component: string }) => o.component).sort()).toEqual(['cuda-libs', 'server']);
    expect(s.downloadedBytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(typeof s.durationMs).toBe('number');
    expect(r.logs.some((l) => l.event === 'install.done')).toBe(true);
    const again = JSON.parse((await runLander(['install', '--config', cfg, '--json'])).stdout);
    expect(again).toMatchObject({ ok: true, installed: [], switched: false, downloadedBytes: 0, generation: 1 });
    expect(again.kept).toHaveLength(2);
  });

  it('a failing command off a terminal: stdout empty, the JSON record on stderr, without a stack', async () => {
    const r = await runLander(['status', '--json', '--config', path.join(work, 'missing.json')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]!);
    expect(rec).toMatchObject({ level: 'error', event: 'command.failed', command: 'status', code: 'ERR_CONFIG' });
    expect(rec.msg).toMatch(/missing\.json: it does not exist/);
    expect(JSON.stringify(rec)).not.toContain('"stack"');
    const debug = await runLander(['status', '--json', '--log-level', 'debug', '--config', path.join(work, 'missing.json')]);
    expect(JSON.parse(debug.stderr.trim().split('\n').pop()!).err.stack).toMatch(/ConfigError/);
  });

  it('help per command; an unknown command or flag exits 2 with a hint; bare lander exits 2', async () => {
    const install = await runLander(['install', '--help']);
    const status = await runLander(['status', '--help']);
    expect([install.code, status.code]).toEqual([0, 0]);
    expect(install.stdout).not.toBe(status.stdout);
    expect(install.stdout).toMatch(/^Usage:\n {2}lander install /m);
    expect(status.stdout).toMatch(/^Usage:\n {2}lander status /m);
    for (const h of [install.stdout, status.stdout]) expect(h).toMatch(/Options:[\s\S]*--log-level LVL[\s\S]*Exit codes:\n {2}0 [\s\S]*Example:\n {2}lander /);
    expect(status.stdout).toMatch(/ {2}3 +no daemon running/);
    expect((await runLander(['help', 'logs'])).stdout).toMatch(/--file F +read this log file/);
    const typo = await runLander(['instal']);
    expect([typo.code, typo.stdout, typo.stderr]).toEqual([2, '', 'lander: unknown command "instal" (did you mean "install"?); see lander --help\n']);
    const flag = await runLander(['status', '--jsno']);
    expect([flag.code, flag.stderr]).toEqual([2, 'lander status: unknown option --jsno (did you mean --json?); see lander status --help\n']);
    const bare = await runLander([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/^lander: no command given\n\nlander: keeps/);
  });

  it('lander logs | head -1 exits 0 with nothing on stderr', async () => {
    const file = path.join(work, 'big.log');
    const line = (i: number) => JSON.stringify({ level: 'info', time: '2025-06-01T12:00:00.000Z', pid: 1, event: 'install.verified', component: 'server', version: `1.0.${i}`, msg: 'component verified and stored' });
    await writeFile(file, Array.from({ length: 50_000 }, (_, i) => line(i)).join('\n') + '\n');
    const child = spawn('bash', ['-c', `set -o pipefail; ${shellLine(['logs', '--file', file])} | head -1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out).toMatch(/install\.verified/);
  });

  it('lander unmark clears a bad mark in the store (no daemon), and says when there was none', async () => {
    const { root, cfg } = await newRoot('unmark');
    const store = await Store.open(root, silentLogger());
    await store.markBad('server', '1.0.0');
    await store.close();
    const st = await runLander(['status', '--config', cfg]);
    expect(st.stdout).toMatch(/^server .* bad: 1\.0\.0$/m);
    const r = await runLander(['unmark', 'server', '1.0.0', '--root', root]);
    expect([r.code, r.stdout]).toEqual([0, 'server 1.0.0 is no longer marked bad; the next lander install or run tries it\n']);
    expect(JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8')).bad).toEqual({});
    const again = await runLander(['unmark', 'server', '1.0.0', '--config', cfg]);
    expect([again.code, again.stdout]).toEqual([0, 'server 1.0.0 was not marked bad\n']);
    // A mistyped root: refused, and nothing is created there.
    const nope = path.join(work, 'no-such-root');
    const wrong = await runLander(['unmark', 'server', '1.0.0', '--root', nope]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('holds no lander store');
    await expect(readdir(nope)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('against a running daemon', () => {
  it('status --json and check work while the config file is invalid: the daemon\'s JSON on stdout, exit 0 or 1', async () => {
    const { root, cfg } = await newRoot('daemon', { api: {} });
    const good = await readFile(cfg, 'utf8');
    const d = startDaemon(cfg);
    try {
      await d.waitFor((r) => r.event === 'generation.landed' || r.event === 'install.done' || r.event === 'generation.swap', { timeoutMs: 30_000 });
      const mark = d.logs().length;
      await writeFile(cfg, good.replace('"download"', '"downlaod"'));
      await d.waitFor((r) => r.event === 'config.invalid', { since: mark, timeoutMs: 20_000 });
      const st = await runLander(['status', '--json', '--config', cfg]);
      expect([0, 1]).toContain(st.code);
      const s = JSON.parse(st.stdout);
      expect(s.root).toBe(root);
      expect(s.config.lastInvalid.issues[0].message).toMatch(/unknown key "downlaod" \(did you mean "download"\?\)/);
      expect(st.stderr).toMatch(/the config file on disk is invalid/);
      // The table too, and by --root with no config file at all.
      const byRoot = await runLander(['status', '--root', root]);
      expect([0, 1]).toContain(byRoot.code);
      expect(byRoot.stdout).toMatch(/last edit rejected at .*downlaod/);
      const check = await runLander(['check', '--json', '--config', cfg]);
      expect(check.code).toBe(0);
      expect(JSON.parse(check.stdout)).toEqual({ queued: true });
    } finally {
      await d.stop();
    }
  });
});

describe('under Deno without the permissions', () => {
  it('a missing permission is lander\'s one line naming the flag, exit 2, no stack', async () => {
    const deno = fileURLToPath(new URL('../../node_modules/.bin/deno', import.meta.url));
    const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
    const r = await run(deno, ['run', '--allow-read', main, 'status', '--root', work]).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^lander: Cannot run lander: Deno denied env access to "\w+"; add --allow-env \(lander needs: deno run --allow-env /);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
