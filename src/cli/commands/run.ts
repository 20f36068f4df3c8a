/**
 * `lander run`: the daemon. Installs what is missing, lands it, supervises
 * the server, watches the config and manifest, serves the status API; SIGHUP
 * reloads the config; SIGTERM or SIGINT stops the server gracefully, leaves
 * downloads resumable, releases the lock and exits 0.
 */
import { Daemon } from '../daemon.ts';
import { loadConfigFile } from '../../config/load.ts';
import { createLogger, reopenLogFiles, type Logger } from '../../report/log.ts';
import { untilInterrupted } from '../interrupt.ts';

export interface RunCommandOptions {
  configPath: string;
  log: Logger;
  /** Resolves when the daemon should stop; default: the first SIGTERM or SIGINT (a second one exits at once). */
  until?: Promise<string>;
}

/**
 * The daemon's logger: the config's `log` section (level, file, stdout), with
 * `--log-level` (or LANDER_LOG_LEVEL) and `--pretty` from the command line
 * winning. An unreadable config gives a plain stdout logger: the daemon's
 * start then fails on the same config and says why through it.
 */
export async function daemonLogger(configPath: string, cli: { level?: string; pretty?: boolean }): Promise<Logger> {
  const logCfg = await loadConfigFile(configPath).then((c) => c.log, () => undefined);
  return createLogger({
    level: cli.level ?? process.env.LANDER_LOG_LEVEL ?? logCfg?.level ?? 'info',
    ...(cli.pretty ? { pretty: true } : {}),
    ...(logCfg?.file ? { file: logCfg.file, stdout: logCfg.stdout } : {}),
  });
}

export async function runCommand(opts: RunCommandOptions): Promise<number> {
  const { log } = opts;
  const until = opts.until ?? untilInterrupted();
  const daemon = await Daemon.start({ configPath: opts.configPath, log });
  const onHup = () => {
    // logrotate's postrotate sends SIGHUP (systemctl reload): write to the new file from now on.
    for (const file of reopenLogFiles()) log.info({ event: 'log.reopen', file }, 'log file reopened');
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
