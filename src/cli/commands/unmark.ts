/**
 * `lander unmark COMPONENT VERSION`: clears the "bad" mark a failed start
 * (and the rollback after it) put on a version, so lander installs and tries
 * it again. Asks the running daemon when there is one (it holds the store's
 * lock and reconciles at once); otherwise writes the store itself.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ApiClient } from '../api-client.ts';
import { readDaemonTarget } from '../daemon-target.ts';
import { hasCode, LanderError } from '../../base/errors.ts';
import type { Logger } from '../../report/log.ts';
import { Store } from '../../store/store.ts';

export interface UnmarkCommandOptions {
  configPath: string;
  root?: string;
  component: string;
  version: string;
  log: Logger;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** For tests: talk to this client instead of the root's socket. */
  client?: ApiClient;
}

export async function unmarkCommand(opts: UnmarkCommandOptions): Promise<number> {
  const target = await readDaemonTarget(opts.configPath, opts.root);
  const client = opts.client ?? new ApiClient({ socketPath: target.socketPath, root: target.root, configPath: opts.configPath });
  const q = `component=${encodeURIComponent(opts.component)}&version=${encodeURIComponent(opts.version)}`;
  let cleared: boolean;
  let via: string;
  try {
    ({ cleared } = await client.post<{ cleared: boolean }>(`/unmark?${q}`));
    via = 'the daemon reconciles now';
  } catch (err) {
    if (!hasCode(err, 'ERR_NO_DAEMON')) {
      if (err instanceof LanderError) {
        opts.stderr.write(`lander unmark: ${err.message} (${err.code})\n`);
        return 1;
      }
      throw err;
    }
    // Opening a store creates its layout: never for a root that holds none (a mistyped --root).
    if (!(await stat(path.join(target.root, 'state.json')).catch(() => undefined))) {
      throw new LanderError('ERR_USAGE', `Cannot unmark ${opts.component} ${opts.version}: ${target.root} holds no lander store (no state.json)`, { data: { root: target.root } });
    }
    const store = await Store.open(target.root, opts.log);
    try {
      cleared = await store.unmarkBad(opts.component, opts.version);
    } finally {
      await store.close();
    }
    via = 'the next lander install or run tries it';
  }
  opts.stdout.write(cleared ? `${opts.component} ${opts.version} is no longer marked bad; ${via}\n` : `${opts.component} ${opts.version} was not marked bad\n`);
  return 0;
}
