/**
 * The event catalogue (src/report/event-catalogue.ts, the README table) against what real
 * runs emit. Real `lander` processes at trace level go through: install
 * with a broken and a resumed download, landing, an operator restart, a bad
 * release rolled back, an operator rollback, invalid and unchanged config
 * edits, a missing version, SIGHUP, SIGTERM mid-download and a resume, a
 * SIGKILLed lander's orphaned server, a manifest that appears late, and
 * one-shot `lander install` runs that succeed, fail and meet a bad config.
 * Every record must name a catalogued event, at a catalogued level, with only
 * catalogued fields (and all the required ones); every catalogued event must
 * show up, unless it is marked rare with a reason.
 *
 * On the way it checks what operators rely on: the server's lines arrive
 * verbatim with `src: "server"` (ANSI colours, invalid UTF-8), /healthz and
 * `lander status` follow lander's health, `log.file` gets the same JSON
 * lines, and `lander logs` reads and filters them.
 */
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMON_FIELDS, EVENTS, eventSpec, levelsOf, type EventSpec } from '../../src/report/event-catalogue.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig, type PublishedAsset } from '../helpers/release.ts';
import { startDaemon, type DaemonProc } from '../helpers/daemon-proc.ts';
import { runLander, type LogRecord } from '../helpers/lander-cli.ts';
import { request } from '../helpers/raw-http.ts';
import { freePort } from '../helpers/free-port.ts';

let server: TestServer;
let work: string;
const cores: Record<string, PublishedAsset> = {};
let cuda: PublishedAsset;
const seen: LogRecord[] = [];
const TRACE = { LANDER_LOG_LEVEL: 'trace' };


beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-events-'));
  for (const [v, flags] of [['1.0.0'], ['1.1.0'], ['1.2.0', '--never-healthy'], ['1.3.0']] as const) {
    const dir = path.join(work, `core-${v}`);
    await makeCoreTree(dir, v, { smallFiles: 5, ...(flags ? { flags } : {}) });
    // A server that greets with colours and bytes that are not UTF-8, as real ones do.
    await writeFile(path.join(dir, 'voicebox-server-cuda'), `#!/bin/sh\nhere=$(dirname "$0")\nprintf '\\033[31mred\\033[0m plain\\n'\nprintf 'bin\\001\\377\\376 junk\\n'\nexec node "$here/_internal/server.mjs" "$@" ${flags ?? ''}\n`);
    cores[v] = await publish(server, v, 'voicebox-server-cuda.tar.gz', dir);
  }
  const c = path.join(work, 'cuda');
  await makeCudaTree(c, { libBytes: 2 * 1024 * 1024, libs: 2 });
  cuda = await publish(server, 'libs', 'cuda-libs-cu128-v1.tar.gz', c);
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

/** Stops a daemon; a stop that hangs fails with the daemon's last words instead of the test's timeout. */
async function stopWithin(d: DaemonProc, signal: NodeJS.Signals, ms = 30_000): Promise<void> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`lander did not exit ${ms} ms after ${signal}; last lines:\n${d.logs().slice(-15).map((r) => JSON.stringify(r)).join('\n')}`)), ms)));
  try {
    await Promise.race([d.stop(signal), hung]);
  } finally {
    clearTimeout(t);
  }
}

function checkRecord(r: LogRecord): string[] {
  const spec: EventSpec | undefined = r.event ? eventSpec(r.event) : undefined;
  if (!spec) return [`no catalogued event: ${JSON.stringify(r).slice(0, 300)}`];
  const problems: string[] = [];
  if (!levelsOf(spec).includes(r.level as never)) problems.push(`${r.event}: level ${r.level}, catalogued ${levelsOf(spec).join('|')}`);
  const documented = new Set<string>([...COMMON_FIELDS, ...spec.fields.map((f) => f.replace(/\?$/, ''))]);
  for (const k of Object.keys(r)) if (!documented.has(k)) problems.push(`${r.event}: field "${k}" is not catalogued`);
  for (const f of spec.fields) if (!f.endsWith('?') && !(f in r)) problems.push(`${r.event}: field "${f}" missing`);
  return problems;
}

describe('event catalogue against real runs', () => {
  it('a daemon through its life, one-shot installs, and a late manifest emit only catalogued events, and all of the common ones', async () => {
    const dir = path.join(work, 'life');
    const root = path.join(dir, 'root');
    await mkdir(root, { recursive: true });
    const configPath = path.join(dir, 'lander.json');
    const logFile = path.join(dir, 'log', 'lander.log');
    const port = await freePort();
    const saveText = async (text: string) => {
      await writeFile(`${configPath}.tmp`, text);
      await rename(`${configPath}.tmp`, configPath);
    };
    const config = (core: string) => JSON.stringify(releaseConfig(server, root, { server: core, cuda: 'cu128-v1', appTag: 'libs' }, {
      download: { retries: 2, backoffInitial: '50ms', connectTimeout: '2s', idleTimeout: '2s' },
      server: {
        command: './voicebox-server-cuda', args: ['--port', String(port)],
        health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '3s' },
        stop: { timeout: '3s' },
      },
      keepGenerations: 2,
      log: { file: logFile },
    }));
    const sock = { socketPath: path.join(root, 'lander.sock') };
    const keep = (d: DaemonProc) => () => seen.push(...d.logs());
    const t0 = performance.now();
    const step = (name: string) => { if (process.env.LANDER_TEST_STEPS) console.log(`${Math.round(performance.now() - t0)} ms: ${name}`); };

    // 1. First install: the cuda-libs body breaks, then the mirror ignores Range: retry, then restart.
    step('1');
    server.misbehave(cuda.urlPath, { cutAfter: 1024 * 1024 });
    server.misbehave(cuda.urlPath, { ignoreRange: true });
    await saveText(config('1.0.0'));
    let d = startDaemon(configPath, TRACE);
    let done = keep(d);
    await d.waitFor((r) => r.event === 'generation.landed');
    expect((await request(sock, 'GET', '/healthz')).status).toBe(200);
    expect((await runLander(['status', '--config', configPath])).code).toBe(0);
    const out = await d.waitFor((r) => r.event === 'server.output' && String(r.line).startsWith('bin'));
    expect(out).toMatchObject({ src: 'server', stream: 'stdout', line: 'bin\u0001\uFFFD\uFFFD junk' });
    expect(d.logs().find((r) => r.event === 'server.output' && String(r.line).includes('red'))!.line).toBe('\u001b[31mred\u001b[0m plain');

    // 2. Invalid edits (twice the same text: unchanged), then health says so.
    step('2');
    let mark = d.logs().length;
    await saveText('{ "root": ');
    await d.waitFor((r) => r.event === 'config.invalid', { since: mark });
    await saveText('{ "root": ');
    await d.waitFor((r) => r.event === 'config.unchanged', { since: mark });
    const sick = await request(sock, 'GET', '/healthz');
    expect([sick.status, sick.json().checks.config.ok]).toEqual([503, false]);
    // status needs a readable config to find the socket: a good copy, as an operator would keep.
    const goodCopy = path.join(dir, 'good.json');
    await writeFile(goodCopy, config('1.0.0'));
    const st = await runLander(['status', '--config', goodCopy]);
    expect(st.code).toBe(1);
    expect(st.stderr).toMatch(/^lander is not healthy: config: an edit was rejected/);

    // 3. A new core lands with a restart; an operator restart.
    step('3');
    mark = d.logs().length;
    await saveText(config('1.1.0'));
    await d.waitFor((r) => r.event === 'generation.landed' && r.generation === 2, { since: mark });
    expect((await request(sock, 'GET', '/healthz')).status).toBe(200);
    expect((await runLander(['restart', '--config', configPath])).code).toBe(0);

    // 4. A version that is not published: the install fails, the server keeps running.
    step('4');
    mark = d.logs().length;
    await saveText(config('9.9.9'));
    await d.waitFor((r) => r.event === 'reconcile.incomplete', { since: mark });

    // 5. A release that never gets healthy is rolled back; a check skips it; then the operator rolls back once more.
    step('5');
    mark = d.logs().length;
    await saveText(config('1.2.0'));
    await d.waitFor((r) => r.event === 'rollback', { since: mark, timeoutMs: 30_000 });
    await d.waitFor((r) => r.event === 'server.state' && r.to === 'healthy', { since: mark, timeoutMs: 30_000 });
    expect((await runLander(['check', '--config', configPath])).code).toBe(0);
    await d.waitFor((r) => r.event === 'install.skip-bad', { since: mark });
    expect((await runLander(['rollback', '--config', configPath])).code).toBe(0);
    await d.waitFor((r) => r.event === 'rollback' && r.reason === 'operator asked for a rollback', { since: mark });
    // Unmarking a version that is not marked: said, and nothing else changes.
    expect((await runLander(['unmark', 'server', '0.0.1', '--config', configPath])).stdout).toBe('server 0.0.1 was not marked bad\n');
    await d.waitFor((r) => r.event === 'install.unmarked' && r.cleared === false, { since: mark });

    // 6. SIGTERM in the middle of a download; the next lander resumes it, reloads on SIGHUP, then is SIGKILLed.
    step('6');
    server.misbehave(cores['1.3.0']!.urlPath, { stallAfter: 64 * 1024 });
    mark = d.logs().length;
    await saveText(config('1.3.0'));
    await d.waitFor((r) => r.event === 'download.start' && r.version === '1.3.0', { since: mark });
    await new Promise((r) => setTimeout(r, 300));
    await stopWithin(d, 'SIGTERM');
    done();
    d = startDaemon(configPath, TRACE);
    done = keep(d);
    await d.waitFor((r) => r.event === 'download.resume');
    await d.waitFor((r) => r.event === 'generation.landed');
    mark = d.logs().length;
    d.signal('SIGHUP');
    await d.waitFor((r) => r.event === 'log.reopen', { since: mark });
    await d.waitFor((r) => r.event === 'config.reload', { since: mark });
    await stopWithin(d, 'SIGKILL');
    done();
    // 7. The next lander stops the orphaned server first.
    step('7');
    d = startDaemon(configPath, TRACE);
    done = keep(d);
    await d.waitFor((r) => r.event === 'server.orphan');
    await d.waitFor((r) => r.event === 'server.state' && r.to === 'healthy');
    await stopWithin(d, 'SIGTERM');
    done();

    // log.file has the same records as stdout; `lander logs` reads and filters it.
    const fileRecords = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as LogRecord);
    expect(fileRecords.filter((r) => r.event === 'rollback')).toHaveLength(2);
    const logs = await runLander(['logs', '--config', configPath, '--event', 'rollback']);
    expect(logs.code).toBe(0);
    const lines = logs.stdout.trim().split('\n');
    expect(lines, logs.stdout).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z ERROR rollback\s+Generation 3 \(server 1\.2\.0\) failed: .* from=3 to=2 /);
    const json = await runLander(['logs', '--config', configPath, '--event', 'server.output', '--json']);
    expect(json.stdout).toContain(JSON.stringify('\u001b[31mred\u001b[0m plain'));

    // 8. One-shot installs: up to date, a digest mismatch, an invalid config.
    step('8');
    const up = await runLander(['install', '--config', configPath], TRACE);
    seen.push(...up.logs);
    expect(up.code).toBe(0);
    const badRoot = path.join(dir, 'bad-root');
    const badCfg = path.join(dir, 'bad.json');
    const cfg = releaseConfig(server, badRoot, { server: '1.0.0', cuda: 'cu128-v1', appTag: 'libs' }) as { components: Record<string, Record<string, unknown>> };
    cfg.components.server = { ...cfg.components.server, sha256: 'e'.repeat(64), sha256Url: undefined };
    await writeFile(badCfg, JSON.stringify(cfg));
    const failed = await runLander(['install', '--config', badCfg], TRACE);
    seen.push(...failed.logs);
    expect(failed.code).toBe(1);
    await writeFile(badCfg, '{"root": "relative"}');
    const invalid = await runLander(['install', '--config', badCfg], TRACE);
    seen.push(...invalid.logs);
    expect(invalid.code).toBe(2);

    // 9. A manifest that is missing at first, then appears, then stays the same.
    step('9');
    const mdir = path.join(work, 'manifest');
    const mroot = path.join(mdir, 'root');
    await mkdir(mroot, { recursive: true });
    const mpath = '/manifests/events.json';
    server.misbehave(mpath, { status: 404 });
    server.serve(mpath, JSON.stringify({ schema: 1, components: { server: { version: '1.0.0', url: cores['1.0.0']!.url, sha256: cores['1.0.0']!.sha256 } } }));
    const base = releaseConfig(server, mroot, { server: 'x', cuda: 'cu128-v1', appTag: 'libs' }) as { components: Record<string, unknown> };
    const mcfg = path.join(mdir, 'lander.json');
    await writeFile(mcfg, JSON.stringify({ ...base, components: { 'cuda-libs': base.components['cuda-libs'] }, manifest: { url: server.url(mpath), interval: '1s', jitter: 0 } }));
    const m = startDaemon(mcfg, TRACE);
    await m.waitFor((r) => r.event === 'manifest.changed');
    await m.waitFor((r) => r.event === 'generation.landed');
    await m.waitFor((r) => r.event === 'manifest.not-modified');
    await stopWithin(m, 'SIGTERM');
    seen.push(...m.logs());

    // Progress lines in the log: at most one per component and job every 5 s (/events has the fine-grained ones).
    const lastProgress = new Map<string, number>();
    for (const r of seen.filter((x) => x.event === 'download.progress')) {
      const key = `${r.pid}/${r.component}/${r.version}`;
      const t = Date.parse(String(r.time));
      if (lastProgress.has(key)) expect(t - lastProgress.get(key)!).toBeGreaterThanOrEqual(4_900);
      lastProgress.set(key, t);
    }
    expect(lastProgress.size).toBeGreaterThan(0);

    const problems = [...new Set(seen.flatMap(checkRecord))];
    expect(problems).toEqual([]);
    const emitted = new Set(seen.map((r) => r.event));
    const notSeen = Object.entries(EVENTS as Record<string, EventSpec>).filter(([n, s]) => !s.rare && !emitted.has(n)).map(([n]) => n);
    expect(notSeen, 'catalogued events no scenario emitted: emit them here or mark them rare with a reason').toEqual([]);
  }, 180_000);
});
