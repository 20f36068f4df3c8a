/**
 * The archive's SHA-256, computed off the install worker's thread: a hash
 * worker reads the `.part` back as it is written (the bytes are in the page
 * cache) and hashes them on the other core, while this thread parses tar
 * and feeds gunzip. The `.part` holds exactly the bytes fed to the
 * extraction, so its digest is theirs.
 */
import { Worker } from 'node:worker_threads';
import { LanderError, deserializeError } from '../base/errors.ts';
import { moduleUrl } from '../base/runtime.ts';
import type { HashEvent, HashRequest, HashToWorker } from '../../workers/protocol.ts';

export class PartHasher {
  private worker: Worker | undefined;
  private result: Promise<string> | undefined;
  private written = 0;
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  /** Started with the first bytes, not before: a download that waits (Retry-After, a slow server) costs no thread. */
  private start(): Worker {
    if (this.worker) return this.worker;
    const req: HashRequest = { type: 'hash', file: this.file };
    const worker = new Worker(moduleUrl(import.meta.url, '../../workers/hash.worker.ts'), { workerData: req });
    this.worker = worker;
    this.result = new Promise<string>((resolve, reject) => {
      worker.on('message', (e: HashEvent) => {
        if (e.type === 'digest') resolve(e.hex);
        else reject(deserializeError(e.error));
        void worker.terminate();
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new LanderError('ERR_WORKER_EXIT', `Cannot hash the archive: the hash worker exited (${code})`)));
    });
    this.result.catch(() => undefined); // seen by digest(); a discarded hasher's end is not a failure
    return worker;
  }

  /** Bytes `[0, n)` of the `.part` are on disk. */
  onDisk(n: number): void {
    if (n <= this.written) return;
    this.written = n;
    this.post({ type: 'upto', bytes: n });
  }

  /** The digest of the first `bytes` bytes of the `.part`. */
  digest(bytes: number): Promise<string> {
    this.post({ type: 'finish', bytes });
    return this.result!;
  }

  /** Stops the worker (a restart or a failure). */
  close(): void {
    void this.worker?.terminate();
  }

  private post(m: HashToWorker): void {
    this.start().postMessage(m);
  }
}
