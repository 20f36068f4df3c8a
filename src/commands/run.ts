/**
 * `lander run`: install what is missing, land it, then supervise the server
 * until SIGTERM or SIGINT (stop it gracefully, exit 0).
 */
import { loadConfigFile } from '../config-file.ts';
import { Lander } from '../lander.ts';
import type { Logger } from '../log.ts';
import { Store } from '../store.ts';

export interface RunCommandOptions {
  configPath: string;
  log: Logger;
  /** Resolves when the daemon should stop; default: the first SIGTERM or SIGINT. */
  until?: Promise<string>;
}

export function firstSignal(signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      for (const s of signals) process.off(s, on);
      resolve(sig);
    };
    for (const s of signals) process.on(s, on);
  });
}

export async function runCommand(opts: RunCommandOptions): Promise<number> {
  const { log } = opts;
  const until = opts.until ?? firstSignal();
  const config = await loadConfigFile(opts.configPath);
  const store = await Store.open(config.root, log);
  const lander = new Lander({ config, store, log });
  log.info({ event: 'daemon.start', root: config.root, config: opts.configPath, components: Object.fromEntries(Object.entries(config.components).map(([n, c]) => [n, c.version ?? '(manifest)'])) }, 'lander running');
  let stopping = false;
  const work = (async () => {
    await lander.startServer();
    if (stopping) return;
    const r = await lander.reconcile();
    if (r.errors.length > 0) log.warn({ event: 'reconcile.incomplete', errors: r.errors.length }, 'some components could not be installed; the server keeps running on the current generation');
  })().catch((err) => log.error({ event: 'reconcile.failed', err }, (err as Error).message));
  const signal = await until;
  stopping = true;
  log.info({ event: 'daemon.stop', signal }, 'stopping');
  await lander.shutdown();
  await work;
  await store.close();
  log.info({ event: 'daemon.stopped' }, 'stopped');
  return 0;
}
