/**
 * True verdicts: a server start that fails for the machine's reasons marks
 * nothing bad. `lander run` with a server command that is not installed yet
 * (an absolute path outside the release), then with its port already taken
 * by another program: each is reported as ERR_SERVER_ENVIRONMENT, no version
 * is marked bad, /healthz and `lander status` say unhealthy; once the
 * machine is fixed, `lander restart` starts the same release.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { startDaemon } from '../helpers/daemon-proc.ts';
import { freePort } from '../helpers/free-port.ts';
import { makeCoreTree, makeCudaTree, publish, releaseConfig } from '../helpers/release.ts';

let server: TestServer;
let work: string;

beforeAll(async () => {
  server = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-env-'));
  const core = path.join(work, 'core');
  await makeCoreTree(core, '1.0.0', { smallFiles: 3 });
  await publish(server, '1.0.0', 'voicebox-server-cuda.tar.gz', core);
  const cuda = path.join(work, 'cuda');
  await makeCudaTree(cuda, { libBytes: 16 * 1024, libs: 1 });
  await publish(server, '1.0.0', 'cuda-libs-cu128-v1.tar.gz', cuda);
});
afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe('environment failures at spawn', () => {
  it('a missing system command and a taken port mark nothing bad; fixed, the same release starts', async () => {
    const root = path.join(work, 'root');
    await mkdir(root);
    const port = await freePort();
    // Outside the release, as /usr/bin/python3 would be: not installed yet.
    const wrapper = path.join(work, 'bin', 'run-server');
    const cfg = path.join(work, 'lander.json');
    await writeFile(cfg, JSON.stringify(releaseConfig(server, root, { server: '1.0.0', cuda: 'cu128-v1' }, {
      server: { command: wrapper, args: ['--port', String(port)], health: { url: `http://127.0.0.1:${port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '10s' }, stop: { timeout: '3s' } },
    })));
    const d = startDaemon(cfg);
    try {
      const env1 = await d.waitFor((r) => r.event === 'server.environment', { timeoutMs: 30_000 });
      expect(String((env1.err as { message: string }).message)).toMatch(/run-server is not installed on this machine\. This is not a fault of the release: no version is marked bad/);
      expect(d.logs().some((r) => r.event === 'rollback' || r.event === 'install.skip-bad')).toBe(false);
      const st = await runLander(['status', '--json', '--config', cfg]);
      expect(st.code).toBe(1);
      expect(st.stderr).toMatch(/lander is not healthy: server: the server is failed/);
      const s = JSON.parse(st.stdout);
      expect(s.components.server.bad).toEqual([]);
      expect(s.lastErrors.at(-1).error.code).toBe('ERR_SERVER_ENVIRONMENT');

      // Another program on the server's port: also the machine's doing.
      await mkdir(path.dirname(wrapper));
      await writeFile(wrapper, '#!/bin/sh\nexec ./voicebox-server-cuda "$@"\n');
      await chmod(wrapper, 0o755);
      const squatter = http.createServer((_q, res) => res.end('not yours'));
      await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
      const mark = d.logs().length;
      const taken = await runLander(['restart', '--config', cfg]);
      await new Promise<void>((r) => squatter.close(() => r()));
      expect(taken.code).toBe(1);
      expect(taken.stderr).toMatch(/another program already listens on the port of http:\/\/127\.0\.0\.1:\d+\/health/);
      await d.waitFor((r) => r.event === 'server.state' && r.to === 'failed', { since: mark });

      // Fixed: the same generation starts, and nothing was ever marked bad.
      const ok = await runLander(['restart', '--config', cfg]);
      expect([ok.code, ok.stderr]).toEqual([0, '']);
      expect((await runLander(['status', '--config', cfg])).code).toBe(0);
      expect(JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8')).bad).toEqual({});
    } finally {
      await d.stop();
    }
  });
});

describe('health while the desired components cannot be installed', () => {
  it('nothing installed and every install failing: /healthz and lander status say unhealthy, naming why', async () => {
    const root = path.join(work, 'root-404');
    await mkdir(root);
    const cfg = path.join(work, 'lander-404.json');
    // 9.9.9 is not published: every attempt gets a 404.
    await writeFile(cfg, JSON.stringify(releaseConfig(server, root, { server: '9.9.9', cuda: 'cu128-v1', appTag: '1.0.0' })));
    const d = startDaemon(cfg);
    try {
      await d.waitFor((r) => r.event === 'reconcile.incomplete', { timeoutMs: 30_000 });
      const st = await runLander(['status', '--json', '--config', cfg]);
      expect(st.code).toBe(1);
      expect(st.stderr).toMatch(/^lander is not healthy: desired: Cannot verify server 9\.9\.9: /m);
      expect(JSON.parse(st.stdout).current).toBeNull();
    } finally {
      await d.stop();
    }
  });
});
