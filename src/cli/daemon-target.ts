/**
 * Where the running daemon listens, for the commands that only talk to it
 * (status, check, restart, rollback, unmark). They must work while the
 * config file on disk is invalid (the daemon runs its last good config and
 * says so), so the file is read leniently: only `root` and `api.socket` are
 * needed, and `--root DIR` needs no file at all.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseConfig, type Config } from '../config/schema.ts';
import { ConfigError, LanderError } from '../base/errors.ts';

export interface DaemonTarget {
  root: string;
  socketPath: string;
  configPath: string;
  /** The config, when the file is valid. */
  config?: Config;
  /** Why the file on disk is not usable as a config (the daemon may still run its last good one). */
  invalid?: ConfigError;
}

export async function readDaemonTarget(configPath: string, rootFlag?: string): Promise<DaemonTarget> {
  if (rootFlag !== undefined) {
    if (!path.isAbsolute(rootFlag)) throw new LanderError('ERR_USAGE', `Cannot use --root ${rootFlag}: expected an absolute path`);
    return { root: rootFlag, socketPath: path.join(rootFlag, 'lander.sock'), configPath };
  }
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (cause) {
    throw new ConfigError(`Cannot read the config file ${configPath}: ${(cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (cause as Error).message}; pass --config FILE, or --root DIR to reach the daemon`, { cause, data: { source: configPath, issues: [{ path: '(file)', message: (cause as Error).message }] } });
  }
  try {
    const config = parseConfig(text, configPath);
    return { root: config.root, socketPath: config.api.socket ?? path.join(config.root, 'lander.sock'), configPath, config };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    let raw: { root?: unknown; api?: { socket?: unknown } } | undefined;
    try {
      raw = JSON.parse(text) as typeof raw;
    } catch {
      raw = undefined;
    }
    const root = typeof raw?.root === 'string' && path.isAbsolute(raw.root) ? raw.root : undefined;
    if (!root) throw new ConfigError(`${err.message}; it names no usable "root", so pass --root DIR to reach the daemon`, { cause: err, data: err.data });
    const socket = typeof raw?.api?.socket === 'string' && path.isAbsolute(raw.api.socket) ? raw.api.socket : path.join(root, 'lander.sock');
    return { root, socketPath: socket, configPath, invalid: err };
  }
}
