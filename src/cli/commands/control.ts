/**
 * `lander check`, `lander restart`, `lander rollback`: ask the running
 * daemon over its API and print what it did. Exit codes: 0 done, 1 refused
 * or failed (the daemon's message on stderr), 2 no root known, 3 no daemon running.
 */
import { ApiClient } from '../api-client.ts';
import { readDaemonTarget } from '../daemon-target.ts';
import { LanderError } from '../../base/errors.ts';
import { safe } from './status-format.ts';

export type ControlAction = 'check' | 'restart' | 'rollback';

export const EXIT_NO_DAEMON = 3;

export interface ControlCommandOptions {
  configPath: string;
  /** The daemon's root, instead of reading it from the config file. */
  root?: string;
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
  // Only the root or socket is needed: an invalid config file must not keep the operator from the daemon.
  const target = await readDaemonTarget(opts.configPath, opts.root);
  const client = opts.client ?? new ApiClient({ socketPath: target.socketPath, root: target.root, configPath: opts.configPath });
  if (target.invalid) opts.stderr.write(`lander ${action}: the config file on disk is invalid (${safe(target.invalid.message)}); asking the daemon at ${target.socketPath}\n`);
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
