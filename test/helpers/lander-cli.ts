/**
 * Runs the real `lander` command as a child process under the runtime the
 * tests run on: `node bin/lander.js` (compiled; `npm test` builds first) or
 * `deno run -A src/main.ts`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const isDeno = 'Deno' in globalThis;

export interface LogRecord {
  level: string;
  event?: string;
  msg: string;
  [k: string]: unknown;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The JSON log lines, parsed: stdout's (lander run) then stderr's (every one-shot command). */
  logs: LogRecord[];
}

export function landerArgv(args: string[]): { cmd: string; argv: string[] } {
  if (isDeno) return { cmd: process.execPath, argv: ['run', '-A', `${REPO}src/main.ts`, ...args] };
  return { cmd: process.execPath, argv: [`${REPO}bin/lander.js`, ...args] };
}

export function parseLogs(text: string): LogRecord[] {
  // Only log records: a command's own output (e.g. pretty-printed JSON) may also start with '{'.
  return text.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try {
      return [JSON.parse(l) as LogRecord];
    } catch {
      return [];
    }
  });
}

/** What a command said on stderr beyond its info logs: warnings, errors, human lines. A clean run has none. */
export function complaints(r: Pick<CliResult, 'stderr'>): string[] {
  return r.stderr.split('\n').filter((l) => {
    if (!l.trim()) return false;
    const [rec] = parseLogs(l);
    return !rec || !['trace', 'debug', 'info'].includes(rec.level);
  });
}

/** Starts lander; the caller waits with `finished()`. */
export function startLander(args: string[], env: Record<string, string> = {}): { child: ChildProcess; finished: () => Promise<CliResult>; output: () => string } {
  const { cmd, argv } = landerArgv(args);
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, logs: [...parseLogs(stdout), ...parseLogs(stderr)] }));
  });
  return { child, finished: () => done, output: () => stdout };
}

export function runLander(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startLander(args, env).finished();
}
