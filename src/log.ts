/**
 * Structured logs: pino JSON lines on stdout (or a destination given by the
 * caller). Every record carries a stable `event` name an operator can grep.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to collect records. */
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LANDER_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything, for library use and tests that don't look. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
