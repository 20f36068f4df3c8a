/**
 * Structured logs: pino JSON lines on stdout (the daemon) or stderr (one-shot
 * commands, whose stdout is their result), or a destination given by the caller, optionally also appended to a file, or pretty-printed for a human
 * at a terminal (`--pretty`). Every record carries a stable `event` name an
 * operator can grep; src/report/event-catalogue.ts lists them all.
 */
import { pino, type Logger, type DestinationStream, type StreamEntry } from 'pino';
import pretty from 'pino-pretty';
import { terminalSafe } from './log-format.ts';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to collect records. */
  destination?: DestinationStream;
  /** Human-readable lines on stdout instead of JSON (pino-pretty, in-process). */
  pretty?: boolean;
  /** With `pretty`: colours; default when stdout is a terminal and NO_COLOR is unset. */
  colorize?: boolean;
  /** Also append JSON lines to this file (absolute path; created if missing). */
  file?: string;
  /** With `file`: keep writing to stdout too. @default true */
  stdout?: boolean;
  /** The descriptor the lines go to: 1 (stdout, the daemon's, for journald) or 2 (stderr, one-shot commands). @default 1 */
  fd?: 1 | 2;
  /** Include an error's stack in its record. @default true */
  stacks?: boolean;
}

/** Called when the log's descriptor is a closed pipe (EPIPE): `lander logs | head`, `lander run | tee` ended. */
let onClosedPipe: () => void = () => undefined;

export function setClosedPipeHandler(handler: () => void): void {
  onClosedPipe = handler;
}

function guardPipe<T extends DestinationStream>(dest: T): T {
  (dest as unknown as NodeJS.EventEmitter).on?.('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') onClosedPipe();
    else process.stderr.write(`lander: cannot write the log: ${err.message}\n`);
  });
  return dest;
}

/**
 * An error as a record: its own message once (pino's default serializer glues
 * every cause's message onto it, so "Cannot use X: bad signature: Y" read
 * "...: Y: Cannot verify the signature: Y"), its causes nested under `cause`,
 * and stacks only when asked for (--log-level debug in one-shot commands).
 */
function errSerializer(stacks: boolean): (err: Error) => Record<string, unknown> {
  const strip = (o: Record<string, unknown>, depth: number) => {
    delete o.stack;
    if (depth < 10 && o.cause && typeof o.cause === 'object') strip(o.cause as Record<string, unknown>, depth + 1);
  };
  return (err) => {
    const s = pino.stdSerializers.errWithCause(err) as unknown as Record<string, unknown>;
    if (!stacks) strip(s, 0);
    return s;
  };
}

type Reopenable = DestinationStream & { reopen(file?: string): void; flushSync?(): void };

/** File destinations of this process, reopened on SIGHUP (`reopenLogFiles`) after logrotate moved them. */
const files = new Map<string, Reopenable>();

export function createLogger(opts: LogOptions = {}): Logger {
  const streams: StreamEntry[] = [];
  if (opts.destination) streams.push({ level: 'trace', stream: opts.destination });
  else if (opts.stdout !== false || !opts.file) {
    const fd = opts.fd ?? 1;
    streams.push({ level: 'trace', stream: guardPipe(opts.pretty ? prettyStream(fd, opts.colorize) : pino.destination({ dest: fd, sync: false })) });
  }
  if (opts.file) {
    const dest = pino.destination({ dest: opts.file, append: true, mkdir: true, sync: false }) as Reopenable;
    files.set(opts.file, dest);
    streams.push({ level: 'trace', stream: dest });
  }
  return pino(
    {
      level: opts.level ?? process.env.LANDER_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: errSerializer(opts.stacks !== false) },
    },
    // One stream needs no multistream (and keeps `flush()` working on the destination).
    streams.length === 1 ? streams[0]!.stream : pino.multistream(streams),
  );
}

/** Reopens every log file (the path may now name a new, empty file). Returns the paths. */
export function reopenLogFiles(): string[] {
  for (const dest of files.values()) dest.reopen();
  return [...files.keys()];
}

/**
 * `--pretty`: one line per record, `HH:MM:ss.l LEVEL: event  message {fields}`;
 * a server's own line is shown as `server stderr| <line>`. Colour escapes
 * (SGR) in a server line pass, other control characters are replaced so a
 * server cannot move the cursor of the operator's terminal.
 */
function prettyStream(fd: 1 | 2, colorize = !!(fd === 2 ? process.stderr : process.stdout).isTTY && !process.env.NO_COLOR): DestinationStream {
  return pretty({
    destination: fd,
    colorize,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,event,src,stream,line',
    messageFormat: (log, key) => {
      if (log.event === 'server.output') return `server ${String(log.stream)}| ${terminalSafe(String(log.line), true)}${log.truncated ? ' …' : ''}`;
      return `${terminalSafe(String(log.event ?? '-'))}  ${terminalSafe(String(log[key] ?? ''))}`;
    },
  });
}

/** A logger that drops everything, for library use and tests that don't look. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
