/**
 * One lander per root, with real processes: a second `lander install` or
 * `lander run` on a root a running lander holds refuses, naming the holder's
 * pid; the lock a SIGKILLed lander leaves behind is taken over.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { startDaemon } from '../helpers/daemon-proc.ts';

let srv: TestServer;
let work: string;
beforeAll(async () => {
  srv = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-lock-'));
  const gz = await buildTarGz([{ name: 'VERSION', content: '1\n' }]);
  srv.serve('/core-1.tar.gz', gz);
  srv.serve('/core-1.tar.gz.sha256', `${sha256Hex(gz)}  core-1.tar.gz\n`);
});
afterAll(async () => {
  await srv?.close();
  await rm(work, { recursive: true, force: true });
});

describe('one lander per root', () => {
  it('a second lander refuses with the holder\'s pid; a SIGKILLed holder\'s lock is taken over', async () => {
    const root = path.join(work, 'root');
    const configPath = path.join(work, 'lander.json');
    await writeFile(configPath, JSON.stringify({
      root,
      components: { core: { version: '1', url: `${srv.origin}/core-{version}.tar.gz`, sha256Url: '{url}.sha256' } },
      download: { retries: 0, backoffInitial: '10ms', connectTimeout: '2s', idleTimeout: '2s' },
    }));
    const d = startDaemon(configPath);
    await d.waitFor((r) => r.event === 'daemon.ready');
    const holder = d.child.pid!;
    expect(JSON.parse(await readFile(path.join(root, 'lander.lock'), 'utf8')).pid).toBe(holder);

    for (const cmd of ['install', 'run']) {
      const second = await runLander([cmd, '--config', configPath]);
      expect(second.code, cmd).not.toBe(0);
      expect(second.stderr, cmd).toContain(`another lander (pid ${holder}) is using it`);
    }

    // Killed without a chance to release: the lock file still names the dead pid.
    await d.stop('SIGKILL');
    expect(JSON.parse(await readFile(path.join(root, 'lander.lock'), 'utf8')).pid).toBe(holder);
    const next = await runLander(['install', '--config', configPath]);
    expect(next.code, next.stderr).toBe(0);
    expect(await readFile(path.join(root, 'current/VERSION'), 'utf8')).toBe('1\n');
    await expect(readFile(path.join(root, 'lander.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
