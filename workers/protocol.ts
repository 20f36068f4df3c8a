/**
 * Typed messages between the main thread and the install worker.
 *
 * The main thread posts one `InstallRequest` as `workerData`, may post an
 * `AbortMessage` later, and receives `WorkerEvent`s until exactly one `done`
 * or `error`.
 */
import type { SerializedError } from '../src/base/errors.ts';
import type { ExpectedFile, VerifyReport } from '../src/store/verify-report.ts';

export type { EntryType, FileRecord } from '../src/store/file-record.ts';
export type { Difference, DifferenceKind, ExpectedFile, VerifyReport } from '../src/store/verify-report.ts';
import type { FileRecord } from '../src/store/file-record.ts';
import type { FlushMode } from '../src/install/flush.ts';

export interface DownloadSettings {
  connectTimeoutMs: number;
  /** A body that delivers nothing for this long is dropped and the download resumed. */
  idleTimeoutMs: number;
  /** Attempts after the first, per URL. */
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Connections for one archive on a server that honours ranges (1: always one stream). @default 8 */
  connections?: number;
  /** Archives (the part still to fetch) smaller than this keep one stream. @default 32 MiB */
  segmentThresholdBytes?: number;
  /** Segment size; by default about four segments per connection, 1–16 MiB. */
  segmentBytes?: number;
  /**
   * One stream that brings at least this many bytes per second (measured on
   * its first `min(512 KiB, segmentBytes)`) keeps going alone: past the
   * inflate rate more connections only cost CPU. @default 64 MiB/s (nginx's first burst on a 10 MB/s link measures ~30)
   */
  segmentBelowBytesPerSec?: number;
  /**
   * Write every byte to the `.part`, also on a link the probe and its recheck found faster than
   * `segmentBelowBytesPerSec`, where bytes otherwise go to the hash worker through a shared ring
   * from then on and the `.part` keeps the prefix before (`src/install/part-ring.ts`).
   */
  keepPart?: boolean;
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
  /** Extra request headers per URL (an OCI registry's `authorization` for its blob URL). */
  headers?: Record<string, Record<string, string>>;
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
  /** How the tree is made durable before it is reported done (src/install/flush.ts). @default DEFAULT_FLUSH */
  flush?: FlushMode;
  /**
   * An archive of at least this many bytes is inflated in the hash worker, beside its SHA-256,
   * instead of on the install worker's thread (src/install/part-hasher.ts). Tests set 0 to take
   * that path with small archives. @default 16 MiB
   */
  offThreadBytes?: number;
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
  /** HTTP connections bringing bytes right now (0 while none is open, e.g. replaying a `.part`). */
  connections: number;
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
  /** Where gunzip ran: beside the SHA-256 in the hash worker (a large archive), or on the install worker's thread. */
  inflatedIn: 'hash-worker' | 'install-worker';
  /** Archive bytes the `.part` holds: all of them, unless a fast link bypassed it from there on (`keepPart`). */
  partBytes: number;
  /** The install worker was a spare, started ahead of the install (the daemon keeps one: `src/base/worker-request.ts`). */
  spareWorker?: boolean;
}

export interface ErrorEvent {
  type: 'error';
  jobId: string;
  error: SerializedError;
}

export type WorkerEvent = ProgressEvent | LogEvent | DoneEvent | ErrorEvent;

/** Re-hash a tree (a generation) against the per-file records of its store entries. Posted as `workerData`. */
export interface VerifyRequest {
  type: 'verify';
  /** Absolute path of the tree. */
  dir: string;
  expected: ExpectedFile[];
  /** Files hashed at once. @default 4 */
  concurrency?: number;
}

export interface VerifyDoneEvent {
  type: 'verify-done';
  report: VerifyReport;
}

/** The hash worker's file (the `.part`), posted as `workerData`. */
export interface HashRequest {
  type: 'hash';
  file: string;
  /**
   * Also inflate the bytes and post the tar stream (`tar` events), at most `windowBytes` not yet
   * credited, and each file entry's body SHA-256 (`body-sha`; pax/long-name headers up to `maxMetaBytes`).
   */
  inflate?: { windowBytes: number; chunkBytes: number; maxMetaBytes: number };
}

/**
 * Bytes `[0, bytes)` of the file are written (`upto`); hash up to `bytes` and answer (`finish`; when
 * inflating, the gzip stream also ends there). `credit`: the install worker took `bytes` of tar stream.
 * `ring`: bytes from `from` on are in this shared ring, not the file (`src/install/part-ring.ts`);
 * `upto` then says how far the ring is written.
 */
export type HashToWorker =
  | { type: 'upto'; bytes: number }
  | { type: 'finish'; bytes: number }
  | { type: 'credit'; bytes: number }
  | { type: 'ring'; buffer: SharedArrayBuffer; from: number };

/**
 * `tar`: inflated bytes, in order (transferred), after `consumed` archive bytes went into gunzip.
 * `tar-end`: the gzip stream ended cleanly. `tar-error`: gunzip refused the bytes (message and zlib code).
 * `body-sha`: the SHA-256 of the body of the file entry whose header is at `offset` (tar-stream's offset).
 * `freed`: the ring's bytes before `bytes` are copied out; their room may be written again.
 */
export type HashEvent =
  | { type: 'digest'; hex: string }
  | { type: 'freed'; bytes: number }
  | { type: 'tar'; chunk: Uint8Array; consumed: number }
  | { type: 'tar-end'; consumed: number }
  | { type: 'tar-error'; message: string; code?: string }
  | { type: 'body-sha'; offset: number; sha256: string }
  | ErrorEvent;
