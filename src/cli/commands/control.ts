/**
 * `lander check`, `lander restart`, `lander rollback`: ask the running
 * daemon over its API and print what it did. Exit codes: 0 done, 1 refused
 * or failed (the daemon's message on stderr), 3 no daemon running.
 */
import { ApiClient, socketPathOf } from '../api-client.ts';
import { loadConfigFile } from '../../config/load.ts';
import { LanderError } from '../../base/errors.ts';
import { safe } from './status-format.ts';

export type ControlAction = 'check' | 'restart' | 'rollback';

export const EXIT_NO_DAEMON = 3;

export interface ControlCommandOptions {
  configPath: string;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Print the daemon's JSON answer as is. */
  json?: boolean;
  signal?: AbortSignal;
  /** For tests: talk to this client instead of the config's socket. */
  client?: ApiClient;
}

export function describeResult(action: ControlAction, r: Record<string, unknown>): string {
  switch (action) {
    case 'check':
      return r.queued === false ? 'a check is already under way' : 'check queued: the daemon re-reads its config, polls the manifest and reconciles';
    case 'restart': {
      const parts = [r.pid !== undefined ? `pid ${safe(r.pid)}` : '', r.generation !== undefined ? `generation ${safe(r.generation)}` : ''].filter(Boolean);
      return `server restarted${parts.length ? ` (${parts.join(', ')})` : ''}`;
    }
    case 'rollback':
      return `rolled back: generation ${r.from === null || r.from === undefined ? '(none)' : safe(r.from)} -> ${safe(r.to)}`;
  }
}

export async function controlCommand(action: ControlAction, opts: ControlCommandOptions): Promise<number> {
  const config = await loadConfigFile(opts.configPath);
  const client = opts.client ?? new ApiClient({ socketPath: socketPathOf(config), root: config.root, configPath: opts.configPath });
  let r: Record<string, unknown>;
  try {
    r = await client.post<Record<string, unknown>>(`/${action}`, opts.signal);
  } catch (err) {
    if (!(err instanceof LanderError)) throw err;
    // An operator's answer, not a log record: the message alone, on stderr.
    opts.stderr.write(err.code === 'ERR_NO_DAEMON' ? `${err.message}\n` : `lander ${action}: ${err.message} (${err.code})\n`);
    return err.code === 'ERR_NO_DAEMON' ? EXIT_NO_DAEMON : 1;
  }
  opts.stdout.write(opts.json ? JSON.stringify(r) + '\n' : describeResult(action, r) + '\n');
  return 0;
}
