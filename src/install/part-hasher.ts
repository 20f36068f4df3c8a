/**
 * The archive's SHA-256, computed off the install worker's thread: a hash
 * worker reads the `.part` back as it is written (the bytes are in the page
 * cache) and hashes them on the other core, while this thread parses tar
 * and feeds gunzip. The `.part` holds exactly the bytes fed to the
 * extraction, so its digest is theirs. A small archive is hashed here as it
 * is fed: a thread costs more than it saves below `HANDOFF_BYTES` (Deno
 * starts a worker in ~0.3 s on a busy machine); past it the worker starts and
 * hashes the file from byte 0.
 *
 * A large single stream is also inflated there (`offThread()`, decided
 * before the first byte): the worker reads each chunk once, hashes it,
 * inflates it, and posts the tar stream back, which this side reads as a
 * Readable and credits as it is taken (`inflate-relay.ts`), with each file
 * body's SHA-256 (`bodyDigest`). On a link faster than that pass, the bytes
 * from some offset on come through a shared ring instead of the `.part`
 * (`toRing`, `part-ring.ts`).
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { TarSource } from './extract.ts';
import { Worker } from 'node:worker_threads';
import { LanderError, deserializeError } from '../base/errors.ts';
import { moduleUrl } from '../base/runtime.ts';
import { isReady, spareData, startMessage } from '../base/worker-request.ts';
import { PartRing } from './part-ring.ts';
import type { HashEvent, HashRequest, HashToWorker } from '../../workers/protocol.ts';

const HANDOFF_BYTES = 16 << 20;
const POST_EVERY = 1 << 20;
/** Default for InstallRequest `offThreadBytes`. */
export const OFF_THREAD_BYTES = HANDOFF_BYTES;
/** Tar stream the worker may post ahead of what this side took, and its chunk size (gunzip's output). */
const WINDOW_BYTES = 4 << 20;
const TAR_CHUNK = 1 << 20;
/** Pacing (`adopt`): one array element (8 bytes) per 128 bytes of tar stream taken. */
const PACE_SHIFT = 7;

const HASH_WORKER = () => moduleUrl(import.meta.url, '../../workers/hash.worker.ts');

/** A hash worker started ahead of need (`prewarmHashWorker`), for the first PartHasher that starts one. */
let spare: Worker | undefined;

/**
 * Starts a spare hash worker on this thread now, while the install worker waits for its request (a
 * spare itself, `worker-request.ts`): the first large archive's hash and inflate then start without
 * waiting ~0.1 s for a thread and its modules (and, under Deno, without this thread blocking 45-100 ms
 * in the constructor mid-download). It does not keep the thread alive.
 */
export function prewarmHashWorker(): Promise<void> {
  if (spare) return Promise.resolve();
  const w = new Worker(HASH_WORKER(), { workerData: spareData() });
  spare = w;
  w.unref();
  return new Promise<void>((resolve) => {
    const onReady = (m: unknown) => { if (isReady(m)) { w.off('message', onReady); resolve(); } };
    w.on('message', onReady);
    w.once('exit', () => {
      if (spare === w) spare = undefined;
      resolve();
    });
  });
}

function hashWorker(req: HashRequest): Worker {
  const w = spare;
  spare = undefined;
  if (!w) return new Worker(HASH_WORKER(), { workerData: req });
  w.removeAllListeners('exit');
  w.removeAllListeners('message');
  w.ref();
  w.postMessage(startMessage(req));
  return w;
}

export class PartHasher {
  private inline: Hash | undefined = createHash('sha256');
  private worker: Worker | undefined;
  private result: Promise<string> | undefined;
  private written = 0;
  private posted = 0;
  private readonly file: string;
  private readonly maxMetaBytes: number;
  private tar: TarSource | undefined;
  private tarConsumed = 0;
  /** Body digests from the worker, and the extraction's waits for them, by header offset. */
  private readonly bodies = new Map<number, string>();
  private readonly bodyWaits = new Map<number, { resolve(hex: string): void; reject(err: Error): void }>();
  private tarOver: Error | undefined;
  /** The worker sent the tar stream's end (its exit after that is ours). */
  private tarEnded = false;

  /** `maxMetaBytes`: the limit the extraction's gate applies to pax/long-name headers (the worker reads them alike). */
  constructor(file: string, o: { maxMetaBytes?: number } = {}) {
    this.file = file;
    this.maxMetaBytes = o.maxMetaBytes ?? 1 << 20;
  }

  /** Started with the first bytes, not before: a download that waits (Retry-After, a slow server) costs no thread. */
  private start(): Worker {
    if (this.worker) return this.worker;
    const req: HashRequest = { type: 'hash', file: this.file, ...(this.tar ? { inflate: { windowBytes: WINDOW_BYTES, chunkBytes: TAR_CHUNK, maxMetaBytes: this.maxMetaBytes } } : {}) };
    const worker = hashWorker(req);
    this.worker = worker;
    this.result = new Promise<string>((resolve, reject) => {
      worker.on('message', (e: HashEvent) => {
        if (isReady(e)) return; // a spare's word that it was up before it was needed
        switch (e.type) {
          case 'tar': return this.onTar(this.adopt(e.chunk), e.consumed);
          case 'body-sha': return this.onBody(e.offset, e.sha256);
          case 'freed': return this.ring?.release(e.bytes);
          case 'tar-end':
            this.tarConsumed = e.consumed;
            this.tarEnded = true;
            this.endBodies(new Error('the tar stream ended before this entry\'s body'));
            this.tar?.push(null);
            return void worker.terminate();
          case 'tar-error': {
            const err = Object.assign(new Error(e.message), e.code ? { code: e.code } : {});
            this.endBodies(err);
            return void this.tar?.destroy(err);
          }
          case 'digest': resolve(e.hex); break;
          case 'error': {
            const err = deserializeError(e.error);
            this.ring?.fail(err); // it reads no more: a write waiting for room would wait forever
            reject(err);
            break;
          }
        }
        if (!this.tar) void worker.terminate(); // inflating, it stays until the tar stream ends
      });
      worker.once('error', reject);
      worker.once('exit', (code) => {
        const err = new LanderError('ERR_WORKER_EXIT', `Cannot hash the archive: the hash worker exited (${code})`);
        reject(err);
        this.ring?.fail(err);
        // A worker gone before the tar stream's end (not terminated by us after it) leaves nothing to wait for.
        this.endBodies(err);
        if (this.tar && !this.tarEnded) this.tar.destroy(err);
      });
    });
    this.result.catch(() => undefined); // seen by digest(); a discarded hasher's end is not a failure
    return worker;
  }

  /**
   * From now on the worker also inflates: the returned stream is the tar stream. Call before the
   * first byte; bytes are then never hashed here.
   */
  offThread(): TarSource {
    if (this.tar) return this.tar;
    this.inline = undefined;
    const tar = new Readable({
      highWaterMark: TAR_CHUNK,
      read: () => this.credit(), // taken: give the window back
    }) as TarSource;
    tar.consumed = () => this.tarConsumed;
    tar.bodyDigest = (offset) => {
      const hex = this.bodies.get(offset);
      if (hex !== undefined) {
        this.bodies.delete(offset);
        return Promise.resolve(hex);
      }
      if (this.tarOver) return Promise.reject(this.tarOver);
      return new Promise<string>((resolve, reject) => this.bodyWaits.set(offset, { resolve, reject }));
    };
    this.tar = tar;
    return tar;
  }

  /** Tar-stream bytes taken from the worker and not yet credited back. */
  private owed = 0;

  private credit(): void {
    if (this.owed > 0) this.post({ type: 'credit', bytes: this.owed });
    this.owed = 0;
  }

  /** The last pacing allocation (`adopt`); kept in a field so no compiler can drop it. */
  private pace: unknown[] | undefined;

  /**
   * Takes a chunk the worker moved here, without a copy. V8 counts memory moved in from another
   * thread toward no scavenge: with nothing else allocating here (once the download is done), the
   * written chunks waited for the 64 MiB external-memory limit, peak RSS 164-188 MiB for 531 MB.
   * So each chunk taken allocates 1/16 of its size in this isolate's young generation, which the
   * install worker keeps at 2 MiB (`INSTALL_WORKER_LIMITS`, worker-client.ts): a scavenge every
   * few MiB frees the chunks written meanwhile (peak RSS 126 MiB). Copying each chunk instead (the
   * earlier way) cost ~0.25 s of CPU per 890 MB of tar, most of it faulting in fresh pages.
   */
  private adopt(chunk: Uint8Array): Buffer {
    this.pace = new Array(chunk.byteLength >> PACE_SHIFT);
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }

  private onTar(chunk: Buffer, consumed: number): void {
    this.tarConsumed = consumed;
    const tar = this.tar;
    if (!tar || tar.destroyed) return;
    this.owed += chunk.length;
    // Taken at once while the stream has room: credited a MiB at a time; else when it is read.
    if (tar.push(chunk) && this.owed >= TAR_CHUNK) this.credit();
  }

  private onBody(offset: number, hex: string): void {
    const w = this.bodyWaits.get(offset);
    if (!w) return void this.bodies.set(offset, hex);
    this.bodyWaits.delete(offset);
    w.resolve(hex);
  }

  /** No more body digests will come: waits still open fail (the extraction reports its own error first). */
  private endBodies(err: Error): void {
    this.tarOver ??= err;
    for (const w of this.bodyWaits.values()) w.reject(err);
    this.bodyWaits.clear();
  }

  /** Bytes fed to the extraction, in order: hashed here until the worker takes over. */
  update(chunk: Buffer): void {
    this.inline?.update(chunk);
  }

  /** Bytes `[0, n)` of the `.part` are on disk. */
  onDisk(n: number): void {
    if (n <= this.written) return;
    this.written = n;
    if (this.inline && n < HANDOFF_BYTES) return;
    this.inline = undefined;
    // One message per MiB, not per socket chunk (a message costs ~30 µs of this thread); `finish` carries the rest.
    if (this.held || n - this.posted < POST_EVERY) return;
    this.posted = n;
    this.post({ type: 'upto', bytes: n });
  }

  private held = false;

  /**
   * While the link's first bytes are measured (`download-attempt.ts`), the worker is told of no
   * new bytes: its reads, hashing and inflate would take the CPU the socket reads need, and on two
   * cores a loopback link then looked slower than 64 MiB/s and went to eight connections (a spare
   * worker, ready at the first byte, did so in 3 of 4 installs). Released, it catches up at once.
   */
  hold(on: boolean): void {
    this.held = on;
    if (on || this.inline || this.written <= this.posted) return;
    this.posted = this.written;
    this.post({ type: 'upto', bytes: this.written });
  }

  private ring: PartRing | undefined;

  /**
   * From archive offset `from` (the bytes on disk so far) on, bytes are written into a shared ring
   * (`ringWrite`) instead of the `.part`, and the worker copies them out of it. Only once the
   * worker inflates (`offThread`) and has taken over the hash.
   */
  toRing(from: number): void {
    if (this.ring) return;
    if (!this.tar || this.inline || from !== this.written) throw new Error(`toRing(${from}) with ${this.written} bytes on disk, or before the worker took over`);
    this.ring = new PartRing(from, (written) => {
      // Waiting for room: the worker must know of every byte in the ring, not only whole MiBs.
      if (written <= this.posted) return;
      this.posted = written;
      this.post({ type: 'upto', bytes: written });
    });
    this.post({ type: 'ring', buffer: this.ring.buffer, from });
  }

  /** The archive offset the ring took over from (the `.part`'s length), if it did. */
  get ringFrom(): number | undefined {
    return this.ring?.from;
  }

  /** Whether bytes go through the ring (`toRing`). */
  get inRing(): boolean {
    return this.ring !== undefined;
  }

  /** The pass failed (the extraction's error): a write waiting for room fails with it. */
  failRing(err: Error): void {
    this.ring?.fail(err);
  }

  /** Copies bytes into the ring at its end (the next archive offset); then `onDisk` them. */
  ringWrite(bufs: readonly Buffer[]): Promise<void> {
    if (!this.ring) throw new Error('ringWrite() before toRing()');
    return this.ring.write(bufs);
  }

  /** The digest of the first `bytes` bytes fed (and of the `.part`). */
  async digest(bytes: number): Promise<string> {
    if (this.inline) return this.inline.digest('hex');
    this.post({ type: 'finish', bytes });
    return this.result!;
  }

  /** Stops the worker (a restart or a failure). */
  close(): void {
    this.ring?.fail(new Error('the hash worker was stopped'));
    void this.worker?.terminate();
    this.endBodies(new Error('the hash worker was stopped'));
    this.tar?.destroy();
  }

  private post(m: HashToWorker): void {
    this.start().postMessage(m);
  }
}
