/**
 * `lander run`: the daemon. Installs what is missing, lands it, supervises
 * the server, watches the config and manifest, serves the status API; SIGHUP
 * reloads the config; SIGTERM or SIGINT stops the server gracefully, leaves
 * downloads resumable, releases the lock and exits 0.
 */
import { Daemon } from '../daemon.ts';
import type { Logger } from '../log.ts';

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
  const daemon = await Daemon.start({ configPath: opts.configPath, log });
  const onHup = () => {
    log.info({ event: 'config.reload', reason: 'SIGHUP' }, 'reloading the config');
    void daemon.reload();
  };
  process.on('SIGHUP', onHup);
  const signal = await until;
  process.off('SIGHUP', onHup);
  log.info({ event: 'daemon.stop', signal }, 'stopping');
  await daemon.stop();
  log.info({ event: 'daemon.stopped' }, 'stopped');
  return 0;
}
