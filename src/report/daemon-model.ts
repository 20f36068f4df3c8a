/**
 * What the running daemon exposes to its status API and CLI: a snapshot
 * (`DaemonStatus`), a stream of events (`DaemonEvent`), and the actions an
 * operator can ask for (`DaemonControl`). Types only; `src/daemon.ts`
 * implements them, `src/api.ts` serves them.
 */
import type { SerializedError } from '../base/errors.ts';
import type { ServerState } from '../supervise/supervisor.ts';

export interface ComponentStatus {
  /** Desired version (config merged with the manifest), if known. */
  desired?: string;
  /** Version in the current generation. */
  installed?: string;
  sha256?: string;
  /** An install job in flight for this component. */
  job?: { version: string; phase: 'queued' | 'digest' | 'download' | 'commit'; bytes: number; total?: number; rate: number; connections?: number; startedAt: string; /** A chunked install: file bytes taken from the store. */ reusedBytes?: number };
  /** Versions that failed on the server and are not retried. */
  bad: string[];
  /** Rollout or targeting: "waiting for rollout: bucket 63, rollout 25%; keeping 1.1.0", "variant cu128 (...)". */
  note?: string;
}

export interface DaemonStatus {
  version: string;
  pid: number;
  runtime: string;
  startedAt: string;
  root: string;
  configPath: string;
  /** When the config was last loaded successfully, and the last rejected edit if any. */
  config: { loadedAt: string; lastInvalid?: { at: string; issues: { path: string; message: string }[] } };
  manifest?: { url: string; lastCheckAt?: string; lastStatus?: number; etag?: string; error?: string; sequence?: number; signedBy?: string };
  components: Record<string, ComponentStatus>;
  current: number | null;
  generations: { id: number; status: string; createdAt: string; components: Record<string, string> }[];
  server: {
    state: ServerState | 'none';
    pid?: number;
    generation?: number | string;
    since?: string;
    restarts?: number;
    /** A restart onto `generation` waiting for the server to be idle: since when, for how long so far, and the bound. */
    restartDeferred?: { generation: number; since: string; waitedMs: number; maxDeferralMs: number };
  };
  lastCheckAt?: string;
  lastErrors: { at: string; error: SerializedError }[];
}

export type DaemonEvent =
  | { type: 'progress'; component: string; version: string; bytes: number; total?: number; downloadedBytes: number; rate: number; connections: number; extractedBytes: number; reusedBytes?: number }
  | { type: 'install'; component: string; version: string; status: 'verified' | 'failed' | 'aborted'; error?: string }
  | { type: 'server.state'; from: string; to: string; pid?: number; generation?: number | string }
  | { type: 'landed'; generation: number; from: number | null; restarted: boolean; durationMs: number }
  | { type: 'rollback'; from: number; to: number | null; reason: string; bad: Record<string, string> }
  | { type: 'config'; status: 'loaded' | 'invalid'; issues?: { path: string; message: string }[] }
  /** A desired version is marked bad and skipped (once per version), or an operator cleared the mark. */
  | { type: 'bad'; component: string; version: string; action: 'skipped' | 'unmarked' }
  /** A restart is deferred until the server is idle (`waiting`), or the wait is over (`done`). */
  | { type: 'idle-wait'; status: 'waiting' | 'done'; generation?: number; maxDeferralMs?: number };

/** Lander's own health (`GET /healthz`): ok only when every check is. */
export interface DaemonHealth {
  ok: boolean;
  checks: {
    config: { ok: boolean; loadedAt: string; detail?: string };
    lastCheck: { ok: boolean; at?: string; detail?: string };
    /** `stuck`: components whose job reported no progress for `stuckAfterMs`. */
    jobs: { ok: boolean; stuck: string[]; stuckAfterMs: number; detail?: string };
    server: { ok: boolean; state: string; detail?: string };
    /** Components whose desired version the last reconcile could not install (`failing`: name → why). */
    desired: { ok: boolean; failing: Record<string, string>; detail?: string };
  };
}

export interface DaemonControl {
  status(): DaemonStatus;
  /** Lander's own health: config, last check, stuck jobs, server state. */
  health(): DaemonHealth;
  /** Re-reads the config, polls the manifest now, and reconciles. Resolves when the check is queued. */
  check(): Promise<{ queued: boolean }>;
  /** Restarts the server on the current generation. */
  restart(): Promise<{ pid?: number; generation?: number | string }>;
  /** Swaps back to the previous good generation and restarts the server there. */
  rollback(): Promise<{ from: number | null; to: number }>;
  /** Clears the bad mark of a component version (`lander unmark`) and reconciles; `cleared` false when it was not marked. */
  unmark(component: string, version: string): Promise<{ cleared: boolean }>;
  /** Subscribes to events; returns the unsubscribe function. */
  subscribe(listener: (e: DaemonEvent) => void): () => void;
  /** Prometheus text exposition (format 0.0.4). */
  metricsText(): string;
}
