/**
 * Turns the supervised server's stdout and stderr into log records
 * (`server.output`), one per line, within a byte budget shared by all runs:
 * lines over budget are dropped and counted (`server.output-dropped`), so a
 * flood never blocks the daemon nor the child (whose pipe is always drained).
 */
import type { ChildProcess } from 'node:child_process';
import { LineSplitter } from '../base/line-splitter.ts';
import type { Logger } from '../report/log.ts';
import type { OutputBudget } from './output-budget.ts';

export interface ServerOutputOptions {
  log: Logger;
  serverPid: number;
  budget: OutputBudget;
  /** Longest line logged, in bytes. @default 16384 */
  maxLineBytes?: number;
  /** Sees every line, logged or dropped (health log-line probe, start nudges). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface ServerOutput {
  /** Logs how many lines were dropped since the last report, if any. */
  reportDropped(): void;
}

export function pipeServerOutput(child: ChildProcess, opts: ServerOutputOptions): ServerOutput {
  const { log, serverPid, budget } = opts;
  const reportDropped = () => {
    const dropped = budget.takeDropped();
    if (dropped > 0) log.warn({ event: 'server.output-dropped', src: 'server', serverPid, dropped, droppedTotal: budget.droppedTotal }, 'server output dropped');
  };
  for (const stream of ['stdout', 'stderr'] as const) {
    const splitter = new LineSplitter({ maxLineBytes: opts.maxLineBytes });
    const emit = (lines: ReturnType<LineSplitter['push']>) => {
      for (const l of lines) {
        opts.onLine?.(l.line, stream);
        // line.length (UTF-16 units) is close enough to bytes for a budget, and free.
        if (!budget.take(l.line.length, performance.now())) continue;
        reportDropped();
        const rec: Record<string, unknown> = { event: 'server.output', src: 'server', stream, serverPid, line: l.line };
        if (l.truncated) rec.truncated = true;
        log.info(rec, 'server output');
      }
    };
    const s = child[stream]!;
    s.on('data', (chunk: Buffer) => {
      emit(splitter.push(chunk));
      // Yield to the event loop after every chunk: otherwise a flooding child keeps
      // us reading (libuv does many reads per turn) and timers and the API wait.
      s.pause();
      setImmediate(() => s.resume());
    });
    s.on('end', () => emit(splitter.end()));
    s.on('error', (err) => log.warn({ event: 'server.output-error', serverPid, stream, err }, 'server output error'));
  }
  return { reportDropped };
}
