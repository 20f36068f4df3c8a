/**
 * `lander status [--watch] [--json]`: the running daemon's status over its
 * API; with `--watch`, its events live (progress bars at a terminal, lines or
 * JSON lines otherwise) until Ctrl-C. With no daemon, the store on disk.
 * Exit code (for scripts and monitoring): 0 lander is healthy (`/healthz`),
 * 1 it is not (the failing checks are printed), 3 no daemon is running.
 */
import { ApiClient } from '../api-client.ts';
import { readDaemonTarget } from '../daemon-target.ts';
import { interruptSignal } from '../interrupt.ts';
import type { DaemonEvent, DaemonHealth, DaemonStatus } from '../../report/daemon-model.ts';
import { hasCode } from '../../base/errors.ts';
import type { Logger } from '../../report/log.ts';
import { ProgressBars } from '../progress-bar.ts';
import { formatStoreStatus, readStoreStatus } from './status-offline.ts';
import { formatDaemonStatus, formatEvent, formatProgress, safe } from './status-format.ts';
import { EXIT_NO_DAEMON } from './control.ts';

export interface StatusCommandOptions {
  configPath: string;
  /** The daemon's root, instead of reading it from the config file. */
  root?: string;
  log: Logger;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Print JSON (one document; with `watch`, then one event per line). */
  json?: boolean;
  /** Follow events until `signal` aborts (default: the CLI's Ctrl-C). */
  watch?: boolean;
  /** A terminal to draw live progress bars on while watching. */
  tty?: NodeJS.WriteStream;
  signal?: AbortSignal;
  /** For tests: talk to this client instead of the config's socket. */
  client?: ApiClient;
}

export async function statusCommand(opts: StatusCommandOptions): Promise<number> {
  const { stdout, stderr } = opts;
  // Only the root or socket is needed: the daemon may be running its last good config while the file is invalid.
  const target = await readDaemonTarget(opts.configPath, opts.root);
  const client = opts.client ?? new ApiClient({ socketPath: target.socketPath, root: target.root, configPath: opts.configPath });
  if (target.invalid) stderr.write(`lander status: the config file on disk is invalid (${safe(target.invalid.message)}); asking the daemon at ${target.socketPath}\n`);
  let status: DaemonStatus;
  try {
    status = await client.getJson<DaemonStatus>('/status', opts.signal);
  } catch (err) {
    if (!hasCode(err, 'ERR_NO_DAEMON')) throw err;
    // Said first, and on stderr with --json so stdout stays one parseable document.
    const note = `The lander daemon is not running (no socket at ${client.where}); showing the store on disk.\n`;
    if (opts.json) stderr.write(note);
    else stdout.write(note);
    const s = await readStoreStatus(target.root, target.config, opts.log);
    stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : formatStoreStatus(s));
    if (opts.watch) stderr.write('lander status: nothing to watch without a daemon\n');
    return EXIT_NO_DAEMON;
  }
  stdout.write(opts.json ? JSON.stringify(status, null, 2) + '\n' : formatDaemonStatus(status));
  const health = await client.getJsonWithStatus<DaemonHealth>('/healthz', opts.signal);
  const healthy = health.status === 200 && health.body.ok;
  if (!healthy) {
    const failing = Object.entries(health.body.checks ?? {}).filter(([, c]) => !c.ok).map(([n, c]) => `${n}: ${safe(c.detail ?? 'not ok')}`);
    // On stderr, so stdout stays one JSON document with --json.
    stderr.write(`lander is not healthy: ${failing.join('; ') || `status ${health.status}`}\n`);
  }
  if (!opts.watch) return healthy ? 0 : 1;
  return watch(client, opts);
}

async function watch(client: ApiClient, opts: StatusCommandOptions): Promise<number> {
  const { stdout, stderr } = opts;
  const signal = opts.signal ?? interruptSignal();
  const bars = opts.tty && !opts.json ? new ProgressBars(opts.tty) : undefined;
  // Off a terminal, one progress line per component per second is plenty for a log.
  const lastLine = new Map<string, number>();
  const onEvent = (e: DaemonEvent) => {
    if (opts.json) {
      stdout.write(JSON.stringify(e) + '\n');
      return;
    }
    if (e.type === 'progress') {
      const key = `${e.component}@${e.version}`;
      if (bars) {
        bars.update(key, { label: safe(e.component), bytes: e.bytes, rate: e.rate, ...(e.total ? { total: e.total } : {}) });
        return;
      }
      const now = Date.now();
      if (now - (lastLine.get(key) ?? 0) < 1000) return;
      lastLine.set(key, now);
      stdout.write(formatProgress(e) + '\n');
      return;
    }
    if (e.type === 'install') bars?.remove(`${e.component}@${e.version}`);
    const line = formatEvent(e);
    if (line === undefined) return;
    if (bars) bars.print(line);
    else stdout.write(line + '\n');
  };
  if (!opts.json) (bars ? bars.print.bind(bars) : (l: string) => stdout.write(l + '\n'))('watching events; Ctrl-C to stop');
  await client.events(onEvent, signal);
  if (signal.aborted) return 0;
  stderr.write('lander status: the daemon closed the event stream (did it stop?)\n');
  return 1;
}
