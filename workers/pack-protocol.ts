/**
 * Typed messages between `lander pack` and its pack worker: one
 * `PackRequest` as workerData, `PackProgress` events (throttled), then
 * exactly one `PackDone` or `PackFailed`. An abort is a `{ type: 'abort' }`
 * message, as for the install worker.
 */
import type { SerializedError } from '../src/base/errors.ts';
import type { SourceEntry } from '../src/pack/walk.ts';

export interface PackRequest {
  type: 'pack';
  component: string;
  /** The one-folder build. */
  sourceDir: string;
  /** This component's entries, in archive order. */
  entries: SourceEntry[];
  /** Written here (a temp name; the command renames it when every archive is done). */
  outFile: string;
  /** gzip level 1-9. */
  level: number;
  /** Header mtime, seconds since the epoch. */
  mtime: number;
  /** Minimum time between progress events. @default 100 */
  progressIntervalMs?: number;
  /** Write a chunked archive and its index here (a temp name, renamed with the archive). */
  chunked?: { indexFile: string; avgChunk?: number };
}

export interface PackProgress {
  type: 'progress';
  component: string;
  /** File bytes read so far. */
  bytes: number;
}

export interface PackDone {
  type: 'done';
  component: string;
  sha256: string;
  size: number;
  entries: number;
  index?: { sha256: string; size: number; members: number };
}

export interface PackFailed {
  type: 'error';
  component: string;
  error: SerializedError;
}

export type PackWorkerEvent = PackProgress | PackDone | PackFailed;
