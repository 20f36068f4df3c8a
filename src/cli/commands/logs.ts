/**
 * `lander logs [--follow] [--event NAME] [--since T] [--level L] [--json]`:
 * lander's own log, filtered, for operators without jq. It reads the log
 * file named by `--file` or the config's `log.file`, or standard input when
 * something is piped in (`journalctl -u lander -o cat | lander logs`).
 * `--follow` keeps reading a file as it grows, across logrotate's rename or
 * truncation; piped input is followed anyway until its writer stops.
 */
import { fstatSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { loadConfigFile } from '../../config/load.ts';
import { LanderError } from '../../base/errors.ts';
import { interruptSignal } from '../interrupt.ts';
import { formatRecord, matches, parseLogLine, terminalSafe, type LogFilter } from '../../report/log-format.ts';

export interface LogsCommandOptions {
  configPath: string;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Read this file rather than the config's `log.file`. */
  file?: string;
  /** Input to read when it is piped; default process.stdin. */
  stdin?: NodeJS.ReadableStream & { fd?: number };
  follow?: boolean;
  filter: LogFilter;
  /** Print the matching records as the JSON lines they were. */
  json?: boolean;
  /** Ends `--follow`; default: the CLI's Ctrl-C. */
  signal?: AbortSignal;
  /** Poll period of `--follow` on a file. @default 250 */
  pollMs?: number;
}

/** True when fd 0 is a pipe, a socket or a redirected file (not a terminal, not /dev/null). */
export function stdinIsPiped(fd = 0): boolean {
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isFile() || st.isSocket();
  } catch {
    return false;
  }
}

export async function logsCommand(opts: LogsCommandOptions): Promise<number> {
  const print = (line: string) => {
    const r = parseLogLine(line);
    if (!r) {
      // Not lander's JSON (a runtime warning, a journald prefix): shown only when nothing is filtered.
      if (!opts.json && !opts.filter.events?.length && opts.filter.sinceMs === undefined && !opts.filter.level && line.trim()) opts.stdout.write(terminalSafe(line) + '\n');
      return;
    }
    if (!matches(r, opts.filter)) return;
    opts.stdout.write((opts.json ? line.trim() : formatRecord(r)) + '\n');
  };
  let file = opts.file;
  if (!file && (opts.stdin || stdinIsPiped())) {
    const input = opts.stdin ?? process.stdin;
    for await (const line of createInterface({ input, crlfDelay: Infinity })) print(line);
    return 0;
  }
  if (!file) {
    const config = await loadConfigFile(opts.configPath);
    file = config.log.file;
    if (!file) {
      opts.stderr.write(`lander logs: ${opts.configPath} sets no "log.file": lander logs to stdout only. Under systemd, pipe the journal in:\n  journalctl -u lander -o cat | lander logs ${opts.follow ? '' : '[--event NAME]'}\n  journalctl -u lander -o cat -f | lander logs   (follow)\n`);
      return 2;
    }
  }
  // Without --follow the read ends by itself; Ctrl-C keeps its default (end the process).
  const signal = opts.signal ?? (opts.follow ? interruptSignal() : new AbortController().signal);
  await readFileLines(file, print, { follow: !!opts.follow, signal, pollMs: opts.pollMs ?? 250 });
  return 0;
}

/**
 * Calls `onLine` for every complete line of `file`; with `follow`, then for
 * every line appended, until `signal` aborts. A file that shrank or was
 * replaced (logrotate) is read again from its start.
 */
export async function readFileLines(file: string, onLine: (line: string) => void, o: { follow: boolean; signal: AbortSignal; pollMs: number }): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (cause) {
    throw new LanderError('ERR_LOG_FILE', `Cannot read the log file ${file}: ${(cause as Error).message}`, { cause, data: { file } });
  }
  let ino = (await fh.stat()).ino;
  let pos = 0;
  let carry = '';
  const buf = Buffer.alloc(256 * 1024);
  const drain = async () => {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      const text = carry + buf.toString('utf8', 0, bytesRead);
      const lines = text.split('\n');
      carry = lines.pop()!;
      for (const l of lines) onLine(l);
    }
  };
  try {
    await drain();
    while (o.follow && !o.signal.aborted) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, o.pollMs);
        o.signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
      });
      if (o.signal.aborted) break;
      const st = await stat(file).catch(() => undefined);
      if (st && (st.ino !== ino || st.size < pos)) {
        // Rotated or truncated: finish the old file, then start the new one from zero.
        await drain();
        await fh.close();
        fh = await open(file, 'r');
        ino = (await fh.stat()).ino;
        pos = 0;
        carry = '';
      }
      await drain();
    }
    if (!o.follow && carry) onLine(carry);
  } finally {
    await fh.close();
  }
}
