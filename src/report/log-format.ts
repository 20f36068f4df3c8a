/**
 * Pure helpers for reading lander's own JSON log lines back: parse a line,
 * decide whether a record passes `lander logs` filters, and print it as one
 * readable line. Hostile-input note: log lines carry the server's output
 * verbatim, so everything printed to a terminal goes through terminalSafe.
 */
import { parseDuration } from '../base/units.ts';

export interface LogRecord {
  time?: string;
  level?: string | number;
  event?: string;
  msg?: string;
  [k: string]: unknown;
}

const SGR = /\x1b\[[0-9;]*m/g; // eslint-disable-line no-control-regex

/**
 * Control characters (C0 but tab, DEL, C1) shown as U+FFFD so text cannot
 * drive the terminal; with `keepColours`, SGR colour sequences pass.
 */
export function terminalSafe(s: string, keepColours = false): string {
  // eslint-disable-next-line no-control-regex
  const scrub = (t: string) => t.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, '\uFFFD');
  if (!keepColours) return scrub(s);
  let out = '';
  let last = 0;
  for (const m of s.matchAll(SGR)) {
    out += scrub(s.slice(last, m.index)) + m[0];
    last = m.index! + m[0].length;
  }
  return out + scrub(s.slice(last));
}

/** A JSON log record, or undefined for any other line (a runtime warning, a partial line). */
export function parseLogLine(line: string): LogRecord | undefined {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as LogRecord) : undefined;
  } catch {
    return undefined;
  }
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

export function levelNumber(level: unknown): number {
  return typeof level === 'number' ? level : (LEVELS[String(level)] ?? 30);
}

export interface LogFilter {
  /** Event names; `server` also selects `server.state` etc. (a prefix up to a dot). */
  events?: string[];
  /** Records from this time on (ms since the epoch). */
  sinceMs?: number;
  /** Minimum level name. */
  level?: string;
}

export function matches(r: LogRecord, f: LogFilter): boolean {
  if (f.events?.length) {
    const e = String(r.event ?? '');
    if (!f.events.some((n) => e === n || e.startsWith(`${n}.`))) return false;
  }
  if (f.sinceMs !== undefined) {
    const t = Date.parse(String(r.time ?? ''));
    if (!(t >= f.sinceMs)) return false;
  }
  if (f.level && levelNumber(r.level) < levelNumber(f.level)) return false;
  return true;
}

/**
 * `--since`: an ISO time (`2025-06-01T12:00:00Z`, `2025-06-01`) or a duration
 * back from now (`10m`, `2h`, `1d`). Returns ms since the epoch.
 */
export function parseSince(text: string, now = Date.now()): number {
  const back = parseDuration(text);
  if (back !== undefined && /[a-z]$/i.test(text)) return now - back;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new RangeError(`Expected --since to be a time (2025-06-01T12:00:00Z) or a duration back from now (10m, 2h, 1d), got "${text}"`);
  return t;
}

const SKIP = new Set(['time', 'level', 'pid', 'hostname', 'event', 'msg']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (v && typeof v === 'object' && 'message' in v && 'type' in v) {
    const e = v as { type: unknown; message: unknown; code?: unknown };
    return JSON.stringify(`${String(e.type)}${e.code ? ` ${String(e.code)}` : ''}: ${String(e.message)}`);
  }
  return JSON.stringify(v) ?? String(v);
}

/**
 * One line per record: `time LEVEL event  message  key=value ...`. A server's
 * line is printed as it was (`server.output  [stderr] <line>`), with control
 * characters made safe.
 */
export function formatRecord(r: LogRecord): string {
  const level = (typeof r.level === 'number' ? (Object.entries(LEVELS).find(([, n]) => n === r.level)?.[0] ?? String(r.level)) : String(r.level ?? '?')).toUpperCase();
  const head = `${String(r.time ?? '-')} ${level.padEnd(5)} ${String(r.event ?? '-').padEnd(22)}`;
  if (r.event === 'server.output') {
    // The server's colours pass (SGR only): they are what its author meant to show.
    return `${terminalSafe(`${head} [${String(r.stream ?? '?')}]`)} ${terminalSafe(String(r.line ?? ''), true)}${r.truncated ? ' …(truncated)' : ''}`;
  }
  const fields = Object.entries(r).filter(([k, v]) => !SKIP.has(k) && v !== undefined).map(([k, v]) => `${k}=${value(v)}`);
  return terminalSafe(`${head} ${String(r.msg ?? '')}${fields.length ? `  ${fields.join(' ')}` : ''}`);
}
