/**
 * Typed messages between the chunked installer and its inflate workers.
 * Each job is one message in, exactly one `InflateResult` out (same `id`).
 * Paths are absolute, inside the job's staging folder (writes) or a store
 * entry (reads); the main thread created every file it names.
 */
import type { SerializedError } from '../src/base/errors.ts';

/** A piece of a file's data inside a member: `length` bytes from `at` in the member go to `offset` in `path`. */
export interface MemberPiece {
  path: string;
  at: number;
  offset: number;
  length: number;
}

/** A tar header the index says starts at `at` in this member; the worker checks the bytes say the same. */
export interface ExpectedHeader {
  at: number;
  /** Header blocks before the data (pax / long-name included). */
  blocks: number;
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode: number;
  size: number;
  linkname?: string;
}

/** One member of a batch: its bytes are `gz[gzStart, gzStart + gzLength)`. */
export interface MemberSpec {
  /** Member index, for messages. */
  member: number;
  gzStart: number;
  gzLength: number;
  tarLength: number;
  sha256: string;
  pieces: MemberPiece[];
  headers: ExpectedHeader[];
  /** Bytes at and after this offset in the member must be zeros (the end-of-archive marker). */
  zerosFrom?: number;
}

/** Neighbouring members, checked and written one by one (`gz` is transferred, not copied). */
export interface MemberJob {
  type: 'member';
  id: number;
  gz: Uint8Array;
  members: MemberSpec[];
}

export interface CopyJob {
  type: 'copy';
  id: number;
  from: string;
  fromOffset: number;
  to: string;
  toOffset: number;
  length: number;
}

export interface HashJob {
  type: 'hash';
  id: number;
  path: string;
  size: number;
  sha256: string;
}

export type InflateJob = MemberJob | CopyJob | HashJob;

export type InflateResult = { id: number; ok: true } | { id: number; ok: false; error: SerializedError };
