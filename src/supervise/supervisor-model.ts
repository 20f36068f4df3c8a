/** The supervisor's public shapes: its states, events, what it reports and how it is configured. */
import type { ServerConfig } from '../config/schema.ts';
import type { OutputBudgetOptions } from './output-budget.ts';
import type { Logger } from '../report/log.ts';

export type ServerState = 'stopped' | 'starting' | 'healthy' | 'unhealthy' | 'stopping' | 'backoff' | 'failed';
export type GenerationId = number | string;

/**
 * API objects (events, info()) name the server's pid `pid`; log records name it
 * `serverPid`, because pino's base fields already carry the daemon's own `pid`
 * and a second `pid` key would make duplicate JSON keys.
 */
export interface ExitInfo {
  pid: number;
  generation: GenerationId;
  code: number | null;
  signal: string | null;
  uptimeMs: number;
  /** ISO time of the exit. */
  at: string;
  /** lander asked it to stop. */
  expected: boolean;
  /** Exit code 0, or the stop signal itself (Deno reports a handled SIGTERM that way). */
  clean: boolean;
  /** It had to be SIGKILLed after the stop timeout. */
  forced: boolean;
}

export interface StateChange {
  from: ServerState;
  to: ServerState;
  pid?: number;
  generation?: GenerationId;
}

export interface SupervisorEvents {
  state: [StateChange];
  exit: [ExitInfo];
  /** No more restarts: the daemon should roll back to the previous generation. */
  'crash-loop': [{ generation: GenerationId; exitsInWindow: number; lastExit?: ExitInfo }];
}

export interface SupervisorInfo {
  state: ServerState;
  pid?: number;
  generation?: GenerationId;
  /** ISO time of the last state change. */
  since: string;
  /** Automatic restarts since the last start(). */
  restarts: number;
  lastExit?: ExitInfo;
  /** Why the last start failed, when it did. */
  lastError?: string;
}

export interface SupervisorOptions {
  server: ServerConfig;
  log: Logger;
  /** Limits on logging the child's output; see OutputBudget. */
  output?: OutputBudgetOptions & {
    /** Longest output line logged, in bytes. @default 16384 */
    maxLineBytes?: number;
  };
  /** Consecutive failed liveness probes before `unhealthy`. @default 3 */
  unhealthyAfter?: number;
  /** Time to wait for the exit after SIGKILL before giving up. @default 5000 */
  killTimeoutMs?: number;
}
