/**
 * SHA-256 of every file entry's body, from the tar stream itself, for the
 * hash worker: it plans the hashing of what it has just inflated, and runs
 * the plan in slices between zlib's callbacks (`inflate-relay.ts`), so the
 * install worker writes files without hashing them. The stream is read by
 * the same TarGate the extraction uses, so entries are found at the same
 * offsets (tar-stream's `offset`, the header's position in what the gate
 * hands on). A refusal stops the hashing quietly: the extraction's own gate
 * refuses the same bytes, with the error of record.
 */
import { createHash, type Hash } from 'node:crypto';
import { FILE_FLAGS } from './entry-classifier.ts';
import { BLOCK } from './tar-headers.ts';
import { TarGate } from './tar-gate.ts';

/** One step of hashing, in stream order: add bytes to a body's hash, or finish it. */
export type HashStep = { kind: 'update'; hash: Hash; bytes: Buffer } | { kind: 'digest'; offset: number; hash: Hash };

interface Body {
  offset: number;
  start: number;
  end: number;
  hash: Hash;
}

export class TarBodyHasher {
  readonly #gate: TarGate;
  readonly #bodies: Body[] = [];
  #pos = 0;
  #stopped = false;

  constructor(maxMetaBytes: number) {
    this.#gate = new TarGate(maxMetaBytes);
  }

  /** Reads inflated bytes in order; returns the hashing they need (views into `chunk`), in order. */
  plan(chunk: Buffer): HashStep[] {
    if (this.#stopped) return [];
    let out: Buffer[];
    try {
      out = this.#gate.feed(chunk);
    } catch {
      this.#stopped = true;
      return [];
    }
    for (let e = this.#gate.shift(); e; e = this.#gate.shift()) {
      if (!FILE_FLAGS.has(e.flag)) continue; // folders and links have no body; only files get a digest
      const start = e.offset + BLOCK;
      this.#bodies.push({ offset: e.offset, start, end: start + e.size, hash: createHash('sha256') });
    }
    const steps: HashStep[] = [];
    const finishReady = () => {
      while (this.#bodies.length > 0 && this.#bodies[0]!.end <= this.#pos) {
        const b = this.#bodies.shift()!;
        steps.push({ kind: 'digest', offset: b.offset, hash: b.hash });
      }
    };
    finishReady(); // empty bodies end at their header
    for (const buf of out) {
      const from = this.#pos;
      const to = from + buf.length;
      for (const b of this.#bodies) {
        if (b.start >= to) break;
        const lo = Math.max(b.start, from);
        const hi = Math.min(b.end, to);
        if (hi > lo) steps.push({ kind: 'update', hash: b.hash, bytes: buf.subarray(lo - from, hi - from) });
      }
      this.#pos = to;
      finishReady();
    }
    return steps;
  }
}

