/**
 * Typed messages between the main thread and the install worker.
 *
 * The main thread posts one `InstallRequest` as `workerData`, may post an
 * `AbortMessage` later, and receives `WorkerEvent`s until exactly one `done`
 * or `error`.
 */
import type { SerializedError } from '../src/base/errors.ts';

export interface DownloadSettings {
  connectTimeoutMs: number;
  /** A body that delivers nothing for this long is dropped and the download resumed. */
  idleTimeoutMs: number;
  /** Attempts after the first, per URL. */
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
}

export interface ExtractLimits {
  maxEntries: number;
  maxExpansionRatio: number;
  maxMetaEntrySize: number;
  maxPathLength: number;
  maxPathDepth: number;
  maxExtractedBytes: number;
}

export interface InstallRequest {
  type: 'install';
  jobId: string;
  component: string;
  version: string;
  /** Archive URLs (mirrors), tried in order; http, https or file. */
  urls: string[];
  /** Expected SHA-256 of the archive, lowercase hex. */
  sha256: string;
  /** Maximum archive size in bytes; a longer body is cut and rejected. */
  maxBytes?: number;
  /** `downloads/<sha256>.part`; its metadata lives in `<partPath>.json`. */
  partPath: string;
  /** A fresh folder (must not exist) that the worker creates with mode 0700. */
  stagingDir: string;
  download: DownloadSettings;
  limits: ExtractLimits;
  /** The free-space check made once the archive's size is known; none when absent. */
  disk?: { expansionEstimate: number; marginBytes: number };
  /** Minimum time between progress events. @default 100 */
  progressIntervalMs?: number;
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'link';

/** One entry of an extracted tree, as recorded in the store. */
export interface FileRecord {
  /** POSIX path relative to the component's root, no leading `./`. */
  path: string;
  type: EntryType;
  /** Bytes, for files. */
  size: number;
  /** Permission bits after clamping (e.g. 0o755). */
  mode: number;
  /** Target, for symlinks and hard links. */
  linkname?: string;
  /** SHA-256 of the content (lowercase hex), for files and hard links; hashed while extracting. Absent in indexes written before lander recorded it. */
  sha256?: string;
}

export interface AbortMessage {
  type: 'abort';
  reason?: string;
}

export type MainToWorker = AbortMessage;

export interface ProgressEvent {
  type: 'progress';
  jobId: string;
  /** Archive bytes through the pipeline so far (re-read from `.part` plus downloaded). */
  bytes: number;
  /** Archive size when known (Content-Length or config `size`). */
  total?: number;
  /** Bytes actually received from the network in this job. */
  downloadedBytes: number;
  /** Network bytes per second over the last interval. */
  rate: number;
  /** Extracted (uncompressed) bytes written so far. */
  extractedBytes: number;
  /** A chunked install: file bytes taken from installed store entries instead of the network. */
  reusedBytes?: number;
}

export interface LogEvent {
  type: 'log';
  level: 'debug' | 'info' | 'warn' | 'error';
  /** Stable event name, e.g. `download.resume`, `download.retry`. */
  event: string;
  fields: Record<string, unknown>;
  msg: string;
}

/** The staging tree is complete and verified. The `.part` is left in place: remove it once the tree is committed. */
export interface DoneEvent {
  type: 'done';
  jobId: string;
  sha256: string;
  /** Archive size. */
  bytes: number;
  /** Bytes received from the network by this job (the rest were re-read from `.part`). */
  downloadedBytes: number;
  /** Bytes re-read from an earlier `.part`. */
  reusedBytes: number;
  extractedBytes: number;
  files: FileRecord[];
}

export interface ErrorEvent {
  type: 'error';
  jobId: string;
  error: SerializedError;
}

export type WorkerEvent = ProgressEvent | LogEvent | DoneEvent | ErrorEvent;

/** One file the verify worker expects in a tree: a store index record and the component it came from. */
export interface ExpectedFile extends FileRecord {
  component: string;
}

/** Re-hash a tree (a generation) against the per-file records of its store entries. Posted as `workerData`. */
export interface VerifyRequest {
  type: 'verify';
  /** Absolute path of the tree. */
  dir: string;
  expected: ExpectedFile[];
  /** Files hashed at once. @default 4 */
  concurrency?: number;
}

export type DifferenceKind = 'missing' | 'extra' | 'type' | 'size' | 'content' | 'mode' | 'link';

export interface Difference {
  path: string;
  kind: DifferenceKind;
  /** The component whose index lists the path (absent for `extra`). */
  component?: string;
  expected?: string | number;
  actual?: string | number;
}

export interface VerifyReport {
  dir: string;
  /** Paths checked (expected ones plus extras found). */
  checked: number;
  /** Content bytes hashed. */
  bytes: number;
  /** Files whose index has no sha256 (written before lander hashed per file): size and mode checked only. */
  unhashed: number;
  differences: Difference[];
}

export interface VerifyDoneEvent {
  type: 'verify-done';
  report: VerifyReport;
}
